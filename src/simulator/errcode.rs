//! WeCom's error envelope: every failure is HTTP 200 with `errcode` and an `errmsg` of the real
//! shape `text, hint: [..], from ip: IP, more info at https://open.work.weixin.qq.com/devtool/query?e=N`,
//! so clients that parse (or log) the text see what production sends.

use rand::Rng;
use serde_json::{json, Map, Value};

pub const OK: i64 = 0;
pub const SYSTEM_BUSY: i64 = -1;
pub const INVALID_CREDENTIAL: i64 = 40001;
pub const INVALID_CORPID: i64 = 40013;
pub const INVALID_ACCESS_TOKEN: i64 = 40014;
pub const INVALID_CODE: i64 = 40029;
pub const INVALID_TAGID: i64 = 40068;
pub const MISSING_ACCESS_TOKEN: i64 = 41001;
pub const MISSING_CORPID: i64 = 41002;
pub const MISSING_SECRET: i64 = 41004;
pub const MISSING_CODE: i64 = 41008;
pub const MISSING_USERID: i64 = 41009;
pub const ACCESS_TOKEN_EXPIRED: i64 = 42001;
pub const REQUIRE_GET: i64 = 43001;
pub const REQUIRE_POST: i64 = 43002;
pub const FREQ_OUT_OF_LIMIT: i64 = 45009;
pub const DATA_FORMAT_ERROR: i64 = 47001;
pub const REDIRECT_URI_UNAUTHORIZED: i64 = 50001;
pub const DEPARTMENT_NOT_FOUND: i64 = 60003;
pub const NO_PRIVILEGE: i64 = 60011;
pub const IP_NOT_ALLOWED: i64 = 60020;
pub const USERID_NOT_FOUND: i64 = 60111;
pub const INVALID_PARTY_ID: i64 = 60123;
pub const INVALID_AGENTID: i64 = 40056;
/// `message/send` with no valid recipient (wecom-api.md §10).
pub const ALL_RECIPIENTS_INVALID: i64 = 81013;

/// The English text WeCom puts before `, hint:`; unknown codes (injected ones) get a generic one.
pub fn text(errcode: i64) -> &'static str {
    match errcode {
        OK => "ok",
        SYSTEM_BUSY => "system busy",
        INVALID_CREDENTIAL => "invalid credential",
        INVALID_CORPID => "invalid corpid",
        INVALID_ACCESS_TOKEN => "invalid access_token",
        INVALID_CODE => "invalid code",
        INVALID_TAGID => "invalid tagid",
        MISSING_ACCESS_TOKEN => "access_token missing",
        MISSING_CORPID => "corpid missing",
        MISSING_SECRET => "corpsecret missing",
        MISSING_CODE => "code missing",
        MISSING_USERID => "userid missing",
        ACCESS_TOKEN_EXPIRED => "access_token expired",
        42003 => "code expired",
        REQUIRE_GET => "require GET method",
        REQUIRE_POST => "require POST method",
        FREQ_OUT_OF_LIMIT => "api freq out of limit",
        45033 => "api concurrent out of limit",
        DATA_FORMAT_ERROR => "data format error",
        48002 => "api forbidden",
        REDIRECT_URI_UNAUTHORIZED => "redirect_uri unauthorized",
        50002 => "user out of range",
        DEPARTMENT_NOT_FOUND => "department not found",
        NO_PRIVILEGE => "no privilege to access/modify contact/party/agent",
        IP_NOT_ALLOWED => "not allow to access from your ip",
        USERID_NOT_FOUND => "userid not found",
        INVALID_PARTY_ID => "invalid party id",
        INVALID_AGENTID => "invalid agentid",
        ALL_RECIPIENTS_INVALID => "user & party & tag all invalid",
        _ => "simulated error",
    }
}

/// The full `errmsg` for `errcode` as seen from `ip`; success is a bare `"ok"` as in WeCom.
pub fn errmsg(errcode: i64, ip: &str) -> String {
    if errcode == OK {
        return "ok".to_owned();
    }
    // Real hints look like `[1651234567_12_0f3e...]`: time, server, request id.
    let mut rng = rand::thread_rng();
    let hint = format!(
        "{}_{}_{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        rng.gen_range(1..100u32),
        rng.gen::<u128>()
    );
    format!(
        "{}, hint: [{hint}], from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}",
        text(errcode)
    )
}

/// The whole error answer.
pub fn error_body(errcode: i64, ip: &str) -> Value {
    json!({ "errcode": errcode, "errmsg": errmsg(errcode, ip) })
}

/// A success answer: `errcode` 0, `errmsg` "ok", then the fields.
pub fn ok_body(fields: Map<String, Value>) -> Value {
    let mut body = Map::new();
    body.insert("errcode".to_owned(), json!(OK));
    body.insert("errmsg".to_owned(), json!("ok"));
    body.extend(fields);
    Value::Object(body)
}
