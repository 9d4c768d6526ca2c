//! `wecom-oidc client …`: the registry from the command line, without curl.

use std::io::Write;

use clap::Subcommand;

use secrecy::SecretString;

use super::{register_client, rotate_client_secret, ChosenSecret};
use crate::clock::UnixTime;
use crate::domain::{AuthMethod, ClientRegistration, GrantType};
use crate::storage::Store;

// Parsed once per command-line run: the size of the `Create` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id and secret (the secret is shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// client_secret_basic (default), client_secret_post, client_secret_jwt, private_key_jwt
        /// (with --jwks-uri or --jwks), or none for a public client.
        #[arg(long = "auth-method", value_parser = parse_auth_method)]
        auth_method: Option<AuthMethod>,
        /// authorization_code, refresh_token (default both).
        #[arg(long = "grant-type", value_parser = parse_grant_type)]
        grant_types: Vec<GrantType>,
        /// The scopes the client may ask for (space separated); every scope when omitted.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        require_pkce: bool,
        /// Put the profile claims into the ID token too (default true; `false` for a minimal
        /// ID token).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        id_token_profile_claims: Option<bool>,
        #[arg(long)]
        always_issue_refresh_token: bool,
        /// Where to POST logout tokens when the person's session or access ends.
        #[arg(long = "backchannel-logout-uri")]
        backchannel_logout_uri: Option<String>,
        /// Every logout token must carry `sid`.
        #[arg(long)]
        backchannel_logout_session_required: bool,
        /// A group value a member must hold to sign in (repeat for several): a department path
        /// (admits its sub-departments) or tag:NAME, dept:NAME, deptid:ID.
        #[arg(long = "allowed-group")]
        allowed_groups: Vec<String>,
        /// The kinds of group values this client receives: comma list of paths, names, ids, tags
        /// (default GROUPS_CLAIM).
        #[arg(long)]
        groups_claim: Option<String>,
        /// Send only group values starting with this prefix (repeat for several).
        #[arg(long = "groups-filter")]
        groups_filter: Vec<String>,
        /// private_key_jwt: where the client publishes its JWK Set.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// private_key_jwt: the client's JWK Set as JSON.
        #[arg(long)]
        jwks: Option<String>,
        /// Use this secret instead of generating one (to move a relying party from another
        /// provider unchanged); stored with argon2id. Prefer the generated secret otherwise.
        #[arg(
            long = "client-secret",
            env = "WECOM_OIDC_CLIENT_SECRET",
            hide_env_values = true
        )]
        client_secret: Option<String>,
    },
    /// List the registered clients.
    List,
    /// Remove a client and every code and token issued to it.
    Delete {
        /// Generated ids may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Make a new secret for a confidential client and print it.
    RotateSecret {
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Set this secret instead of generating one; stored with argon2id.
        #[arg(
            long = "client-secret",
            env = "WECOM_OIDC_CLIENT_SECRET",
            hide_env_values = true
        )]
        client_secret: Option<String>,
    },
}

fn parse_auth_method(raw: &str) -> Result<AuthMethod, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(|_| {
        "expected client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt or none"
            .to_owned()
    })
}

fn parse_grant_type(raw: &str) -> Result<GrantType, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|_| "expected authorization_code or refresh_token".to_owned())
}

pub async fn run(
    store: &Store,
    key_encryption_key: Option<&SecretString>,
    now: UnixTime,
    command: ClientCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            auth_method,
            grant_types,
            scope,
            require_pkce,
            id_token_profile_claims,
            always_issue_refresh_token,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            allowed_groups,
            groups_claim,
            groups_filter,
            jwks_uri,
            jwks,
            client_secret,
        } => {
            let chosen = client_secret
                .as_deref()
                .map(ChosenSecret::parse)
                .transpose()?;
            let registration = ClientRegistration {
                client_name: name,
                redirect_uris,
                post_logout_redirect_uris,
                token_endpoint_auth_method: auth_method,
                grant_types: (!grant_types.is_empty()).then_some(grant_types),
                response_types: None,
                scope,
                require_pkce: Some(require_pkce),
                id_token_profile_claims,
                always_issue_refresh_token: Some(always_issue_refresh_token),
                backchannel_logout_uri,
                backchannel_logout_session_required: Some(backchannel_logout_session_required),
                allowed_groups: (!allowed_groups.is_empty()).then_some(allowed_groups),
                groups_claim: groups_claim
                    .map(|kinds| kinds.split(',').map(|k| k.trim().to_owned()).collect()),
                groups_filter: (!groups_filter.is_empty()).then_some(groups_filter),
                jwks: jwks
                    .map(|raw| serde_json::from_str(&raw))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--jwks: expected a JWK Set as JSON ({e})"))?,
                jwks_uri,
            };
            let created =
                register_client(store, key_encryption_key, registration, chosen, now).await?;
            writeln!(out, "client_id: {}", created.client.client_id)?;
            match created.client_secret {
                Some(secret) => {
                    writeln!(out, "client_secret: {secret}")?;
                    writeln!(
                        out,
                        "(the secret is shown only now; `client rotate-secret` makes a new one)"
                    )?;
                }
                None if created.client.metadata.token_endpoint_auth_method
                    == AuthMethod::PrivateKeyJwt =>
                {
                    writeln!(
                        out,
                        "(private_key_jwt: no secret; the client signs with its key)"
                    )?
                }
                None if created.client.secret_hash.is_some() => {
                    writeln!(out, "client_secret: (the one you chose)")?;
                }
                None => writeln!(out, "(public client: no secret; it must use PKCE)")?,
            }
        }
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                writeln!(out, "no clients registered")?;
            }
            for client in clients {
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    client.client_id,
                    client.metadata.client_name,
                    client.metadata.token_endpoint_auth_method.as_str(),
                    client.metadata.redirect_uris.join(" ")
                )?;
            }
        }
        ClientCommand::Delete { client_id } => {
            store
                .delete_client(&client_id)
                .await
                .map_err(super::RegistryError::from)?;
            writeln!(out, "deleted {client_id}")?;
        }
        ClientCommand::RotateSecret {
            client_id,
            client_secret,
        } => {
            let chosen = client_secret
                .as_deref()
                .map(ChosenSecret::parse)
                .transpose()?;
            let secret =
                rotate_client_secret(store, key_encryption_key, &client_id, chosen, now).await?;
            writeln!(out, "client_id: {client_id}")?;
            match secret {
                Some(secret) => writeln!(out, "client_secret: {secret}")?,
                None => writeln!(out, "client_secret: (the one you chose)")?,
            }
        }
    }
    Ok(())
}
