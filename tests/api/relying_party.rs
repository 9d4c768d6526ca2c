//! End to end with an independent relying party: the `openidconnect` crate discovers the provider,
//! builds the authorization request, redeems the code with PKCE, verifies the ID token (signature,
//! issuer, audience, nonce, at_hash) and calls userinfo.

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::json;

use crate::helpers::{parse_callback, TestApp, WECOM_UA};

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `member` in through the relying party; `in_client` switches to the WeCom client's browser.
async fn sign_in_as_relying_party(
    app: &TestApp,
    member: &str,
    in_client: bool,
) -> (serde_json::Value, CoreUserInfoClaims) {
    let client_reg = app.confidential_client().await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_reg.id.clone()),
        Some(ClientSecret::new(client_reg.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(client_reg.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("phone".into()))
        .add_scope(Scope::new("groups".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The person's browser: provider → WeCom → provider → back to the relying party.
    let mut request = app.browser.get(auth_url.as_str());
    if in_client {
        request = request.header("User-Agent", WECOM_UA);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 302);
    let wecom = crate::helpers::location(&response);
    let choice: Vec<(&str, &str)> = if in_client {
        vec![("userid", member), ("consent", "1")]
    } else {
        vec![("userid", member)]
    };
    let callback = app.wecom_approves(&wecom, &choice).await;
    let back = parse_callback(&app.follow(&callback).await);
    assert_eq!(
        back.state.as_deref(),
        Some(csrf.secret().as_str()),
        "state comes back unchanged"
    );
    assert_eq!(
        back.iss.as_deref(),
        Some(app.issuer.as_str()),
        "RFC 9207 iss"
    );

    let tokens = client
        .exchange_code(AuthorizationCode::new(back.code.expect("a code")))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("ID token verifies");
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash");
    assert!(claims.auth_time().is_some(), "auth_time");
    let claims_json = serde_json::to_value(claims).unwrap();
    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    (claims_json, userinfo)
}

#[tokio::test]
async fn qr_login_yields_a_verified_id_token_and_userinfo() {
    let app = TestApp::spawn().await;

    let (id_claims, userinfo) = sign_in_as_relying_party(&app, "ZhangSan", false).await;

    assert_eq!(id_claims["sub"], "zhangsan", "sub is the lowercased userid");
    assert_eq!(userinfo.subject().as_str(), "zhangsan");
    assert_eq!(userinfo.preferred_username().unwrap().as_str(), "ZhangSan");
    assert_eq!(userinfo.name().unwrap().get(None).unwrap().as_str(), "张三");
    // A QR login of an app created after 2022-06-20 never sees the mailbox: the synthetic one.
    assert_eq!(userinfo.email().unwrap().as_str(), "zhangsan@wecom.local");
    assert_eq!(userinfo.email_verified(), Some(false));
    assert!(
        userinfo.phone_number().is_none(),
        "no phone without a user_ticket"
    );
}

#[tokio::test]
async fn in_client_login_yields_the_sensitive_profile() {
    let app = TestApp::spawn().await;

    let (_, userinfo) = sign_in_as_relying_party(&app, "ZhangSan", true).await;

    assert_eq!(
        userinfo.email().unwrap().as_str(),
        "zhangsan@corp.example.com",
        "biz_mail first"
    );
    assert_eq!(
        userinfo.email_verified(),
        Some(true),
        "biz_mail is verified"
    );
    assert_eq!(userinfo.phone_number().unwrap().as_str(), "+8613800138000");
    assert!(userinfo.picture().is_some());
    assert_eq!(userinfo.gender().unwrap().as_str(), "male");
}

#[tokio::test]
async fn groups_are_department_paths_and_prefixed_tags() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;

    let back = app.sign_in(&client, "ZhangSan", &[]).await;
    let tokens: serde_json::Value = app
        .exchange(&client, &back.code.unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    let userinfo: serde_json::Value = app
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();

    let groups = userinfo["groups"].as_array().expect("groups claim");
    assert!(groups.contains(&json!("总部/研发部/平台组")), "{groups:?}");
    assert!(groups.contains(&json!("tag:管理员")), "{groups:?}");
    assert!(
        !groups
            .iter()
            .any(|g| g.as_str().unwrap().starts_with("dept")),
        "GROUPS_CLAIM defaults to paths and tags: {groups:?}"
    );
}
