//! The `/cgi-bin/` server APIs: gettoken, code → identity, sensitive detail, members,
//! departments and tags, app messages. Plain functions over [`SimState`], no actix, so they are tested
//! without a server; every failure is an errcode the HTTP edge turns into WeCom's envelope.

use serde_json::{json, Map, Value};

use super::directory::{App, Department, Directory, Member, SensitiveField};
use super::errcode;
use super::params::Params;
use super::state::{
    domain_matches, GrantKind, SentMessage, SimState, SimTime, Subject, TicketGrant,
    DEBUG_RATE_LIMIT_PER_MINUTE, TICKET_TTL_SECS,
};

/// What `auth/getuserdetail` shows for a withheld avatar ("a default image" \[D96443\]).
pub const DEFAULT_AVATAR: &str = "https://wework.qpic.cn/wwpic/sim-default-avatar/0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// One API request, as the HTTP edge hands it over.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall<'a> {
    pub path: &'a str,
    pub method: Method,
    pub query: &'a Params,
    pub body: &'a [u8],
    /// The caller's IP, echoed in errmsg and checked against trusted IPs.
    pub ip: &'a str,
}

type Fields = Map<String, Value>;
type Endpoint = fn(&mut SimState, SimTime, &ApiCall<'_>) -> Result<Fields, i64>;

/// Answers an API call; `None` when the path is no API the simulator knows.
pub fn handle(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Option<Value> {
    let (method, endpoint): (Method, Endpoint) = match call.path.trim_end_matches('/') {
        "/cgi-bin/gettoken" => (Method::Get, gettoken),
        "/cgi-bin/auth/getuserinfo" => (Method::Get, auth_getuserinfo),
        "/cgi-bin/user/getuserinfo" => (Method::Get, legacy_getuserinfo),
        "/cgi-bin/auth/getuserdetail" => (Method::Post, getuserdetail),
        "/cgi-bin/user/get" => (Method::Get, user_get),
        "/cgi-bin/department/list" => (Method::Get, department_list),
        "/cgi-bin/department/simplelist" => (Method::Get, department_simplelist),
        "/cgi-bin/department/get" => (Method::Get, department_get),
        "/cgi-bin/tag/list" => (Method::Get, tag_list),
        "/cgi-bin/tag/get" => (Method::Get, tag_get),
        "/cgi-bin/message/send" => (Method::Post, message_send),
        _ => return None,
    };
    let answer = check_method(method, call.method)
        .and_then(|()| rate_limit(state, now, call))
        .and_then(|()| endpoint(state, now, call));
    Some(match answer {
        Ok(fields) => errcode::ok_body(fields),
        Err(code) => errcode::error_body(code, call.ip),
    })
}

/// The per-corp, per-API limit (one corporation per simulator, so per path), and the much
/// lower one for `debug=1` requests.
fn rate_limit(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<(), i64> {
    let path = call.path.trim_end_matches('/');
    if call.query.get("debug") == Some("1") {
        state.check_rate(&format!("debug:{path}"), DEBUG_RATE_LIMIT_PER_MINUTE, now)?;
    }
    let limit = state.settings.rate_limit_per_minute;
    state.check_rate(path, limit, now)
}

fn check_method(expected: Method, actual: Method) -> Result<(), i64> {
    match (expected, actual) {
        (Method::Get, Method::Get) | (Method::Post, Method::Post) => Ok(()),
        (Method::Get, _) => Err(errcode::REQUIRE_GET),
        (Method::Post, _) => Err(errcode::REQUIRE_POST),
        (Method::Other, _) => Ok(()),
    }
}

/// The app behind the call's access token, after the token and trusted-IP checks.
fn authorize(state: &SimState, now: SimTime, call: &ApiCall<'_>) -> Result<App, i64> {
    let agent_id = state.check_token(call.query.get("access_token"), now)?;
    let app = state
        .directory
        .app(&agent_id)
        .cloned()
        .ok_or(errcode::INVALID_ACCESS_TOKEN)?;
    // Since 2022-06-20 new apps may read corporation data only from their 企业可信IP [§8.3].
    if let Some(ips) = &app.trusted_ips {
        if !ips.iter().any(|ip| ip.trim() == call.ip) {
            return Err(errcode::IP_NOT_ALLOWED);
        }
    }
    Ok(app)
}

fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn gettoken(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let corpid = call
        .query
        .non_empty("corpid")
        .ok_or(errcode::MISSING_CORPID)?;
    let secret = call
        .query
        .non_empty("corpsecret")
        .ok_or(errcode::MISSING_SECRET)?;
    if corpid != state.directory.corp_id {
        return Err(errcode::INVALID_CORPID);
    }
    // A disabled app's secret is refused exactly like a wrong one [D90313].
    let agent_id = state
        .directory
        .apps
        .iter()
        .find(|app| app.secret == secret && app.enabled)
        .map(|app| app.agent_id.clone())
        .ok_or(errcode::INVALID_CREDENTIAL)?;
    let token = state.issue_token(&agent_id, now);
    Ok(fields(json!({
        "access_token": token,
        "expires_in": super::state::TOKEN_TTL_SECS,
    })))
}

/// Who a code stands for, once redeemed.
enum Identity {
    Member {
        userid: String,
        ticket: Option<String>,
    },
    NonMember {
        openid: String,
        external_userid: Option<String>,
    },
}

/// Redeems a code for the token's app: 40029 for unknown, used or expired codes, 50001 for a
/// code of another app or a redirect host outside this app's domain.
fn redeem_code(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Identity, i64> {
    let app = authorize(state, now, call)?;
    let code = call.query.non_empty("code").ok_or(errcode::MISSING_CODE)?;
    let grant = state.peek_code(code, now).ok_or(errcode::INVALID_CODE)?;
    if grant
        .agent_id
        .as_deref()
        .is_some_and(|agent| agent != app.agent_id)
    {
        return Err(errcode::REDIRECT_URI_UNAUTHORIZED);
    }
    if let Some(domain) = &app.redirect_domain {
        if !domain_matches(&grant.redirect_host, domain) {
            return Err(errcode::REDIRECT_URI_UNAUTHORIZED);
        }
    }
    // Consumed only once it is certain to succeed; a second redemption then finds nothing.
    let grant = state.take_code(code).ok_or(errcode::INVALID_CODE)?;
    match grant.subject {
        Subject::Member(userid) => {
            // A ticket needs scope snsapi_privateinfo with agentid (else WeCom downgraded the
            // request to base), the member's consent and the member in range [D96442].
            let ticket = match grant.kind {
                GrantKind::OAuthPrivateInfo {
                    consented: Some(consented),
                } if grant.agent_id.as_deref() == Some(app.agent_id.as_str())
                    && state.directory.userid_visible(&app, &userid) =>
                {
                    Some(state.issue_ticket(
                        TicketGrant {
                            agent_id: app.agent_id.clone(),
                            userid: userid.clone(),
                            fields: consented,
                            expires_at: now + TICKET_TTL_SECS,
                        },
                        now,
                    ))
                }
                _ => None,
            };
            Ok(Identity::Member { userid, ticket })
        }
        Subject::NonMember(openid) => {
            let external_userid = state
                .directory
                .non_member(&openid)
                .and_then(|n| n.external_userid.clone());
            Ok(Identity::NonMember {
                openid,
                external_userid,
            })
        }
    }
}

fn auth_getuserinfo(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let mut out = Fields::new();
    match redeem_code(state, now, call)? {
        Identity::Member { userid, ticket } => {
            out.insert("userid".into(), json!(userid));
            if let Some(ticket) = ticket {
                out.insert("user_ticket".into(), json!(ticket));
            }
        }
        Identity::NonMember {
            openid,
            external_userid,
        } => {
            out.insert("openid".into(), json!(openid));
            if let Some(external_userid) = external_userid {
                out.insert("external_userid".into(), json!(external_userid));
            }
        }
    }
    Ok(out)
}

/// The pre-2019 `user/getuserinfo`, with its capitalised keys, for old clients.
fn legacy_getuserinfo(
    state: &mut SimState,
    now: SimTime,
    call: &ApiCall<'_>,
) -> Result<Fields, i64> {
    let mut out = Fields::new();
    match redeem_code(state, now, call)? {
        Identity::Member { userid, ticket } => {
            out.insert("UserId".into(), json!(userid));
            out.insert("DeviceId".into(), json!(""));
            if let Some(ticket) = ticket {
                out.insert("user_ticket".into(), json!(ticket));
                out.insert("expires_in".into(), json!(TICKET_TTL_SECS));
            }
        }
        Identity::NonMember {
            openid,
            external_userid,
        } => {
            out.insert("OpenId".into(), json!(openid));
            out.insert("DeviceId".into(), json!(""));
            if let Some(external_userid) = external_userid {
                out.insert("external_userid".into(), json!(external_userid));
            }
        }
    }
    Ok(out)
}

fn getuserdetail(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let body: Value = serde_json::from_slice(call.body).map_err(|_| errcode::DATA_FORMAT_ERROR)?;
    let bad_ticket = state.settings.user_ticket_errcode;
    let ticket = body
        .get("user_ticket")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(bad_ticket)?;
    let grant = state
        .ticket(ticket, now)
        .filter(|grant| grant.agent_id == app.agent_id)
        .ok_or(bad_ticket)?;
    let member = state
        .directory
        .member(&grant.userid)
        .ok_or(errcode::USERID_NOT_FOUND)?;

    // Never `name` [WxJava#2854]; each sensitive field only when both the admin enabled it and
    // the member consented; otherwise gender "0" and a default avatar, the rest left out [D96443].
    let mut out = Fields::new();
    out.insert("userid".into(), json!(member.userid));
    for field in SensitiveField::ALL {
        let released = grant.fields.contains(&field) && app.sensitive_fields.contains(&field);
        if released {
            out.insert(field.key().into(), json!(member.sensitive(field)));
        } else if field == SensitiveField::Gender {
            out.insert(field.key().into(), json!("0"));
        } else if field == SensitiveField::Avatar {
            out.insert(field.key().into(), json!(DEFAULT_AVATAR));
        }
    }
    Ok(out)
}

fn user_get(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let userid = call
        .query
        .non_empty("userid")
        .ok_or(errcode::MISSING_USERID)?;
    let directory = &state.directory;
    let member = directory.member(userid).ok_or(errcode::USERID_NOT_FOUND)?;
    if !directory.member_visible(&app, member) {
        return Err(app.out_of_range_errcode);
    }
    Ok(member_fields(
        directory,
        &app,
        member,
        state.settings.stripped_fields_absent,
    ))
}

/// The `user/get` answer for `member` as `app` may see it.
fn member_fields(directory: &Directory, app: &App, member: &Member, absent: bool) -> Fields {
    let mut department = Vec::new();
    let mut order = Vec::new();
    let mut is_leader = Vec::new();
    // Only departments the app may view are listed [D96255]; `order` and
    // `is_leader_in_dept` stay aligned with them.
    for (index, &id) in member.department.iter().enumerate() {
        if !directory.department_visible(app, id) {
            continue;
        }
        department.push(id);
        order.push(member.order.get(index).copied().unwrap_or(0));
        let leads = directory.department(id).is_some_and(|d| {
            d.department_leader
                .iter()
                .any(|l| l.to_lowercase() == member.userid.to_lowercase())
        });
        is_leader.push(u8::from(leads));
    }
    let direct_leader: Vec<&str> = member
        .direct_leader
        .iter()
        .filter(|l| directory.userid_visible(app, l))
        .filter_map(|l| directory.member(l).map(|m| m.userid.as_str()))
        .collect();

    let mut out = fields(json!({
        "userid": member.userid,
        "name": member.name,
        "department": department,
        "order": order,
        "position": member.position,
        "is_leader_in_dept": is_leader,
        "direct_leader": direct_leader,
        "telephone": member.telephone,
        "alias": member.alias,
        "status": member.status,
        "external_position": member.external_position,
    }));
    let main_department = member
        .main_department
        .or_else(|| member.department.first().copied())
        .filter(|&id| directory.department_visible(app, id));
    if let Some(id) = main_department {
        out.insert("main_department".into(), json!(id));
    }
    if let Some(extattr) = &member.extattr {
        out.insert("extattr".into(), extattr.clone());
    }
    if let Some(profile) = &member.external_profile {
        out.insert("external_profile".into(), profile.clone());
    }

    // Apps created after 2022-06-20 no longer receive the S fields [D96255]. thumb_avatar is
    // withheld with avatar, since handing out the thumbnail would defeat the change.
    let mut sensitive: Vec<(&str, String)> = SensitiveField::ALL
        .into_iter()
        .map(|f| (f.key(), member.sensitive(f)))
        .collect();
    sensitive.push(("thumb_avatar", member.thumb_avatar.clone()));
    for (key, value) in sensitive {
        if !app.created_after_2022_06_20 {
            out.insert(key.into(), json!(value));
        } else if !absent {
            out.insert(key.into(), json!(""));
        }
    }
    out
}

fn department_fields(directory: &Directory, app: &App, department: &Department) -> Value {
    let leaders: Vec<&str> = department
        .department_leader
        .iter()
        .filter(|l| directory.userid_visible(app, l))
        .filter_map(|l| directory.member(l).map(|m| m.userid.as_str()))
        .collect();
    json!({
        "id": department.id,
        "name": department.name,
        "name_en": department.name_en,
        "department_leader": leaders,
        "parentid": department.parentid,
        "order": department.order,
    })
}

/// A department id from the query: 60123 when it is no positive number, 60003 when no such
/// department exists, 60011 when the app may not see it.
fn department_id(directory: &Directory, app: &App, raw: &str) -> Result<u32, i64> {
    let id: u32 = raw
        .trim()
        .parse()
        .ok()
        .filter(|&id| id > 0)
        .ok_or(errcode::INVALID_PARTY_ID)?;
    if directory.department(id).is_none() {
        return Err(errcode::DEPARTMENT_NOT_FOUND);
    }
    if !directory.department_visible(app, id) {
        return Err(errcode::NO_PRIVILEGE);
    }
    Ok(id)
}

/// The departments `department/list` and `simplelist` cover: the subtree under `id` (or every
/// department when it is absent), limited to the app's range \[D90344, D95406\].
fn listed_departments<'a>(
    directory: &'a Directory,
    app: &App,
    query: &Params,
) -> Result<Vec<&'a Department>, i64> {
    let candidates = match query.get("id").filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => directory.subtree(department_id(directory, app, raw)?),
        None => directory.departments.iter().collect(),
    };
    Ok(candidates
        .into_iter()
        .filter(|d| directory.department_visible(app, d.id))
        .collect())
}

fn department_list(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let directory = &state.directory;
    let list: Vec<Value> = listed_departments(directory, &app, call.query)?
        .into_iter()
        .map(|d| department_fields(directory, &app, d))
        .collect();
    Ok(fields(json!({ "department": list })))
}

fn department_simplelist(
    state: &mut SimState,
    now: SimTime,
    call: &ApiCall<'_>,
) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let list: Vec<Value> = listed_departments(&state.directory, &app, call.query)?
        .into_iter()
        .map(|d| json!({ "id": d.id, "parentid": d.parentid, "order": d.order }))
        .collect();
    Ok(fields(json!({ "department_id": list })))
}

fn department_get(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let directory = &state.directory;
    let raw = call.query.get("id").unwrap_or_default();
    let id = department_id(directory, &app, raw)?;
    let department = directory
        .department(id)
        .ok_or(errcode::DEPARTMENT_NOT_FOUND)?;
    Ok(fields(json!({
        "department": department_fields(directory, &app, department),
    })))
}

/// Self-built apps see every tag \[D90352\].
fn tag_list(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    authorize(state, now, call)?;
    let list: Vec<Value> = state
        .directory
        .tags
        .iter()
        .map(|t| json!({ "tagid": t.tagid, "tagname": t.tagname }))
        .collect();
    Ok(fields(json!({ "taglist": list })))
}

fn tag_get(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let directory = &state.directory;
    let tag = call
        .query
        .get("tagid")
        .and_then(|raw| raw.trim().parse::<u32>().ok())
        .and_then(|tagid| directory.tag(tagid))
        .ok_or(errcode::INVALID_TAGID)?;
    // Members and departments outside the app's range are left out [D90349].
    let users: Vec<Value> = tag
        .userlist
        .iter()
        .filter_map(|u| directory.member(u))
        .filter(|m| directory.member_visible(&app, m))
        .map(|m| json!({ "userid": m.userid, "name": m.name }))
        .collect();
    let parties: Vec<u32> = tag
        .partylist
        .iter()
        .copied()
        .filter(|&id| directory.department_visible(&app, id))
        .collect();
    Ok(fields(json!({
        "tagname": tag.tagname,
        "userlist": users,
        "partylist": parties,
    })))
}

/// `POST /cgi-bin/message/send` (wecom-api.md §10), `touser` only: the message goes to the
/// recipients the app may reach (known, active, in its visible range); the others come back in
/// `invaliduser`, lower-cased, and 81013 when none is left. Sent messages are kept for the demo
/// and the tests.
fn message_send(state: &mut SimState, now: SimTime, call: &ApiCall<'_>) -> Result<Fields, i64> {
    let app = authorize(state, now, call)?;
    let body: Value = serde_json::from_slice(call.body).map_err(|_| errcode::DATA_FORMAT_ERROR)?;
    let agent_id = body.get("agentid").and_then(|a| {
        a.as_i64()
            .map(|n| n.to_string())
            .or_else(|| a.as_str().map(str::to_owned))
    });
    if agent_id.as_deref() != Some(app.agent_id.as_str()) {
        return Err(errcode::INVALID_AGENTID);
    }
    let msgtype = body
        .get("msgtype")
        .and_then(Value::as_str)
        .filter(|t| ["text", "textcard", "markdown"].contains(t))
        .ok_or(errcode::DATA_FORMAT_ERROR)?;
    let content = body
        .get(msgtype)
        .filter(|c| c.is_object())
        .cloned()
        .ok_or(errcode::DATA_FORMAT_ERROR)?;
    let touser = body
        .get("touser")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(errcode::ALL_RECIPIENTS_INVALID)?;
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for userid in touser.split('|') {
        match state.directory.member(userid) {
            Some(member) if member.status == 1 && state.directory.member_visible(&app, member) => {
                valid.push(member.userid.clone());
            }
            _ => invalid.push(userid.to_lowercase()),
        }
    }
    if valid.is_empty() {
        return Err(errcode::ALL_RECIPIENTS_INVALID);
    }
    let msgid = format!("sim-msg-{}", state.messages.len() + 1);
    state.messages.push(SentMessage {
        msgid: msgid.clone(),
        agent_id: app.agent_id.clone(),
        touser: valid,
        msgtype: msgtype.to_owned(),
        content,
        sent_at: now,
    });
    Ok(fields(json!({
        "invaliduser": invalid.join("|"),
        "invalidparty": "",
        "invalidtag": "",
        "unlicenseduser": "",
        "msgid": msgid,
    })))
}
