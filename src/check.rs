//! `wecom-oidc check`: calls WeCom with the configured credentials and explains, in plain words and
//! with the fix, whatever is wrong — the checks a platform team needs before the first sign-in.
//! The console's status page runs the same checks ([`checks`]).
//!
//! It reaches WeCom only through `wecom::WeComClient`, opens no store and starts no server.

use std::io::Write;

use crate::config::Config;
use crate::domain::group::GroupKinds;
use crate::wecom::{MemberStatus, WeComClient, WeComError};

/// One check's result: whether it passed, what was checked, and the explanation or fix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckLine {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

/// The checks' results, in order.
#[derive(Debug, Default)]
struct Report(Vec<CheckLine>);

impl Report {
    fn add(&mut self, ok: bool, what: &str, detail: &str) {
        self.0.push(CheckLine {
            ok,
            what: what.to_owned(),
            detail: detail.to_owned(),
        });
    }
}

/// Runs every check and prints the report; `Ok(true)` when all passed.
pub async fn run(
    config: &Config,
    userid: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let lines = checks(config, userid).await?;
    for line in &lines {
        let mark = if line.ok { "ok  " } else { "FAIL" };
        writeln!(out, "[{mark}] {}", line.what)?;
        for detail in line.detail.lines().filter(|l| !l.is_empty()) {
            writeln!(out, "       {detail}")?;
        }
    }
    Ok(lines.iter().all(|line| line.ok))
}

fn explain(client: &WeComClient, err: &WeComError) -> String {
    format!("{err}\n{}", client.explain(err))
}

/// Runs every check, stopping where a failure makes the rest meaningless.
pub async fn checks(config: &Config, userid: Option<&str>) -> anyhow::Result<Vec<CheckLine>> {
    let mut report = Report::default();
    let out = &mut report;
    let settings = &config.wecom;
    let Some(credentials) = &settings.credentials else {
        out.add(
            false,
            "WeCom credentials",
            "WECOM_CORP_ID, WECOM_CORP_SECRET and WECOM_AGENT_ID are not set.\n\
             Find them in the WeCom admin console: 我的企业 (CorpID) and 应用管理 → your app (AgentId, Secret).",
        );
        return Ok(std::mem::take(&mut out.0));
    };
    let callback_host = settings
        .redirect_url
        .host_str()
        .map(|host| match settings.redirect_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        })
        .unwrap_or_default();
    out.add(
        true,
        "configuration",
        &format!(
            "corp id {}, agent id {}, callback {}\n\
             In the app's settings, 企业微信授权登录 → 设置授权回调域 and 网页授权及JS-SDK → 可信域名 must both be exactly: {callback_host}",
            credentials.corp_id, credentials.agent_id, settings.redirect_url
        ),
    );

    let egress = match &settings.proxy {
        Some(proxy) => format!(
            "WeCom API calls go through the proxy {} (WECOM_PROXY); WeCom sees the proxy's address.",
            crate::wecom::proxy_display(proxy)
        ),
        None => "WeCom API calls go out directly (no WECOM_PROXY); WeCom sees this host's egress address.".to_owned(),
    };
    out.add(true, "egress", &egress);
    let client = WeComClient::new(settings, credentials).map_err(|e| anyhow::anyhow!("{e}"))?;
    match client.check_credentials().await {
        Ok(()) => out.add(true, "gettoken: corp id and secret are accepted", ""),
        Err(err) => {
            out.add(false, "gettoken", &explain(&client, &err));
            return Ok(std::mem::take(&mut out.0));
        }
    }
    match client.departments().await {
        Ok(departments) => out.add(
            true,
            &format!(
                "department/list: the app sees {} departments",
                departments.len()
            ),
            "",
        ),
        Err(err) => {
            out.add(false, "department/list", &explain(&client, &err));
        }
    }
    if let Some(userid) = userid {
        match client.member(userid).await {
            Ok(member) => {
                let (ok, state) = match member.status {
                    MemberStatus::Active => (true, "active"),
                    MemberStatus::Disabled => {
                        (false, "disabled by an administrator: cannot sign in")
                    }
                    MemberStatus::NotActivated => (
                        false,
                        "not activated yet: must log in to the WeCom app once",
                    ),
                    MemberStatus::Left => (false, "has left the corporation: cannot sign in"),
                    MemberStatus::Other(_) => (false, "in an unknown state"),
                };
                out.add(
                    ok,
                    &format!(
                        "user/get {userid}: {} is {state}",
                        member.name.as_deref().unwrap_or(userid)
                    ),
                    if member.email.is_none() && member.biz_mail.is_none() {
                        "WeCom returned no email for this member (normal for apps created after 2022-06-20: \
                         email arrives after one sign-in inside the WeCom client with consent)."
                    } else {
                        ""
                    },
                );
                // The exact values to write allowed_groups and RBAC rules with.
                match client.groups(&member, GroupKinds::ALL).await {
                    Ok(groups) => out.add(
                        true,
                        &format!("groups of {userid}: {} values", groups.len()),
                        &groups.join("\n"),
                    ),
                    Err(err) => {
                        out.add(
                            false,
                            "groups (department/list, tag/list, tag/get)",
                            &explain(&client, &err),
                        );
                    }
                }
            }
            Err(err) => {
                out.add(
                    false,
                    &format!("user/get {userid}"),
                    &explain(&client, &err),
                );
            }
        }
    }
    Ok(std::mem::take(&mut out.0))
}
