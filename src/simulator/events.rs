//! WeCom as an event sender (§10.9 of `wecom-events.md`): the per-source callback settings, the
//! event XML of §10.5, WXBizMsgCrypt sealing (random prefix, padding to 32, signature), the URL
//! check WeCom makes when an admin saves the settings, and delivery with WeCom's retries.
//!
//! ```text
//! SimEvent ─► to_xml ─► seal: encrypt(random ‖ len ‖ xml ‖ CorpID), sign ─► EventRequest
//!          ─► deliver: POST ?msg_signature&timestamp&nonce, 5 s timeout; not 200 → up to 3 more
//! ```

use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use url::Url;

use crate::wecom::events::EventCipher;

/// WeCom drops the connection after 5 s \[D90238\].
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// "总共重试三次" \[D90238\]: read here as one delivery plus three retries.
pub const DELIVERY_RETRIES: usize = 3;
/// The URL check must be answered within one second \[D90930\].
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// Who receives callbacks: an app's 接收消息 settings or the 通讯录同步 assistant's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventSource {
    App(String),
    ContactSync,
}

impl EventSource {
    pub fn app(agent_id: &str) -> EventSource {
        EventSource::App(agent_id.to_owned())
    }
}

/// How the 16-byte random prefix is made. Official samples use digits or letters and digits; real
/// traffic has carried binary (§10.3.3). Receivers must treat it as opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    Digits,
    #[default]
    Alphanumeric,
    Binary,
}

impl PrefixMode {
    fn random(self) -> [u8; 16] {
        let mut rng = rand::thread_rng();
        let mut prefix = [0u8; 16];
        for byte in &mut prefix {
            *byte = match self {
                PrefixMode::Digits => rng.gen_range(b'0'..=b'9'),
                PrefixMode::Alphanumeric => rng.sample(Alphanumeric),
                PrefixMode::Binary => rng.gen(),
            };
        }
        prefix
    }
}

/// One source's callback settings, as the admin entered them.
#[derive(Debug, Clone)]
pub struct EventTarget {
    pub url: Url,
    pub cipher: EventCipher,
    pub prefix: PrefixMode,
    /// Apps only: also send `change_contact` events. Whether WeCom sends them to self-built apps
    /// is unconfirmed (§10.1); on by default so one URL can be tested with every event.
    pub change_contact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyChange {
    Create,
    Update,
    Delete,
}

/// An event WeCom sends (§10.5). As JSON (`POST /_sim/events/send`):
/// `{"type": "update_user", "userid": "lisi", "status": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimEvent {
    Subscribe {
        userid: String,
    },
    Unsubscribe {
        userid: String,
    },
    EnterAgent {
        userid: String,
    },
    CreateUser {
        userid: String,
    },
    /// Only the changed fields are sent; `userid` is the id before the change.
    UpdateUser {
        userid: String,
        #[serde(default)]
        new_userid: Option<String>,
        #[serde(default)]
        status: Option<u8>,
        #[serde(default)]
        department: Option<Vec<u32>>,
    },
    DeleteUser {
        userid: String,
    },
    Party {
        change: PartyChange,
        id: u32,
    },
    UpdateTag {
        tag_id: u32,
        #[serde(default)]
        add_users: Vec<String>,
        #[serde(default)]
        del_users: Vec<String>,
    },
    BatchJobResult {
        job_type: String,
    },
}

/// `<![CDATA[…]]>`, splitting any `]]>` so the text survives intact.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl SimEvent {
    /// `change_contact` events go to the contact-sync assistant (and apps that take them); the
    /// others only to apps.
    pub fn is_change_contact(&self) -> bool {
        matches!(
            self,
            SimEvent::CreateUser { .. }
                | SimEvent::UpdateUser { .. }
                | SimEvent::DeleteUser { .. }
                | SimEvent::Party { .. }
                | SimEvent::UpdateTag { .. }
        )
    }

    /// The decrypted message, in the shapes of the official pages \[D90240; D90970–D90973\].
    pub fn to_xml(&self, corp_id: &str, agent_id: Option<&str>, create_time: i64) -> String {
        let header = |from: &str| {
            format!(
                "<ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>{}</MsgType>",
                cdata(corp_id),
                cdata(from),
                cdata("event")
            )
        };
        let agent = agent_id
            .map(|id| format!("<AgentID>{id}</AgentID>"))
            .unwrap_or_default();
        let app_event = |name: &str, userid: &str, key: bool| {
            let key = if key { "<EventKey></EventKey>" } else { "" };
            format!(
                "<xml>{}<Event>{}</Event>{key}{agent}</xml>",
                header(userid),
                cdata(name)
            )
        };
        let contact = |change: &str, body: String| {
            format!(
                "<xml>{}<Event>{}</Event><ChangeType>{}</ChangeType>{body}</xml>",
                header("sys"),
                cdata("change_contact"),
                cdata(change)
            )
        };
        match self {
            SimEvent::Subscribe { userid } => app_event("subscribe", userid, true),
            SimEvent::Unsubscribe { userid } => app_event("unsubscribe", userid, true),
            SimEvent::EnterAgent { userid } => app_event("enter_agent", userid, true),
            SimEvent::CreateUser { userid } => {
                contact("create_user", format!("<UserID>{}</UserID>", cdata(userid)))
            }
            SimEvent::UpdateUser {
                userid,
                new_userid,
                status,
                department,
            } => {
                let mut body = format!("<UserID>{}</UserID>", cdata(userid));
                if let Some(new) = new_userid {
                    body.push_str(&format!("<NewUserID>{}</NewUserID>", cdata(new)));
                }
                if let Some(department) = department {
                    body.push_str(&format!("<Department>{}</Department>", cdata(&join(department))));
                }
                if let Some(status) = status {
                    body.push_str(&format!("<Status>{status}</Status>"));
                }
                contact("update_user", body)
            }
            SimEvent::DeleteUser { userid } => {
                contact("delete_user", format!("<UserID>{}</UserID>", cdata(userid)))
            }
            SimEvent::Party { change, id } => {
                let change = match change {
                    PartyChange::Create => "create_party",
                    PartyChange::Update => "update_party",
                    PartyChange::Delete => "delete_party",
                };
                contact(change, format!("<Id>{id}</Id>"))
            }
            SimEvent::UpdateTag {
                tag_id,
                add_users,
                del_users,
            } => {
                let mut body = format!("<TagId>{tag_id}</TagId>");
                if !add_users.is_empty() {
                    body.push_str(&format!("<AddUserItems>{}</AddUserItems>", cdata(&join(add_users))));
                }
                if !del_users.is_empty() {
                    body.push_str(&format!("<DelUserItems>{}</DelUserItems>", cdata(&join(del_users))));
                }
                contact("update_tag", body)
            }
            SimEvent::BatchJobResult { job_type } => format!(
                "<xml>{}<Event>{}</Event><BatchJob><JobId>{}</JobId><JobType>{}</JobType><ErrCode>0</ErrCode><ErrMsg>{}</ErrMsg></BatchJob></xml>",
                header("sys"),
                cdata("batch_job_result"),
                cdata(&crate::simulator::state::random_string(43)),
                cdata(job_type),
                cdata("ok")
            ),
        }
    }
}

/// One signed, encrypted callback, ready to send (and to send again: a replay is the identical
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    pub source: EventSource,
    /// The target URL with `msg_signature`, `timestamp` and `nonce` appended, percent-encoded.
    pub url: Url,
    pub body: String,
    /// The decrypted message, for assertions.
    pub plaintext: String,
}

/// The values that make a sealed request; random in real use, fixed by the self-check.
#[derive(Debug, Clone, Copy)]
pub struct Sealing<'a> {
    pub agent_id: Option<&'a str>,
    pub timestamp: i64,
    pub nonce: &'a str,
    pub random: &'a [u8; 16],
}

/// `url` with the query pairs appended, each value percent-encoded (`+`, `/`, `=` included).
fn with_query(url: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut url = url.clone();
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
    }
    url
}

/// Encrypts and signs `plaintext` for `target` and wraps it in the POST envelope (§10.4).
pub fn seal(
    source: EventSource,
    target: &EventTarget,
    plaintext: &str,
    seal: Sealing<'_>,
) -> EventRequest {
    let encrypted = target.cipher.encrypt(plaintext.as_bytes(), seal.random);
    let timestamp = seal.timestamp.to_string();
    let signature = target.cipher.signature(&timestamp, seal.nonce, &encrypted);
    let agent = seal
        .agent_id
        .map(|id| format!("<AgentID>{}</AgentID>", cdata(id)))
        .unwrap_or_default();
    let body = format!(
        "<xml><ToUserName>{}</ToUserName>{agent}<Encrypt>{}</Encrypt></xml>",
        cdata(target.cipher.receive_id()),
        cdata(&encrypted)
    );
    EventRequest {
        source,
        url: with_query(
            &target.url,
            &[
                ("msg_signature", &signature),
                ("timestamp", &timestamp),
                ("nonce", seal.nonce),
            ],
        ),
        body,
        plaintext: plaintext.to_owned(),
    }
}

/// A nonce as seen in real traffic: 9–10 digits (§10.2).
pub fn random_nonce() -> String {
    let mut rng = rand::thread_rng();
    rng.gen_range(100_000_000u64..10_000_000_000).to_string()
}

/// What one POST got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Status(u16),
    /// No answer: connection refused, timeout, …
    Failed(String),
}

/// The outcome of sending one request, retries included.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub request: EventRequest,
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    /// The receiver answered 200, which is all WeCom looks at \[D90238\].
    pub fn accepted(&self) -> bool {
        self.attempts.last() == Some(&Attempt::Status(200))
    }

    /// The control surface's view: source, outcome, every attempt, and the plaintext.
    pub fn to_json(&self) -> serde_json::Value {
        let source = match &self.request.source {
            EventSource::App(agent_id) => format!("app:{agent_id}"),
            EventSource::ContactSync => "contact_sync".to_owned(),
        };
        let attempts: Vec<serde_json::Value> = self
            .attempts
            .iter()
            .map(|attempt| match attempt {
                Attempt::Status(status) => serde_json::json!(status),
                Attempt::Failed(error) => serde_json::json!(error),
            })
            .collect();
        serde_json::json!({
            "source": source,
            "accepted": self.accepted(),
            "attempts": attempts,
            "plaintext": self.request.plaintext,
        })
    }
}

/// POSTs once; the body is ignored, as WeCom ignores it for these events.
pub async fn post_once(client: &reqwest::Client, url: &Url, body: Vec<u8>) -> Attempt {
    let sent = client
        .post(url.clone())
        .timeout(DELIVERY_TIMEOUT)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => Attempt::Status(response.status().as_u16()),
        Err(error) => Attempt::Failed(error.without_url().to_string()),
    }
}

/// Sends `request` until it gets a 200, at most 1 + [`DELIVERY_RETRIES`] times. Retries repeat
/// the identical request (whether WeCom re-signs is unconfirmed, §10.6) and follow at once, so
/// tests need not wait.
pub async fn deliver(client: &reqwest::Client, request: EventRequest) -> Delivery {
    let mut attempts = Vec::new();
    for _ in 0..=DELIVERY_RETRIES {
        let attempt = post_once(client, &request.url, request.body.clone().into_bytes()).await;
        let done = attempt == Attempt::Status(200);
        attempts.push(attempt);
        if done {
            break;
        }
    }
    tracing::info!(source = ?request.source, attempts = ?attempts, "simulated WeCom event sent");
    Delivery { request, attempts }
}

/// The check WeCom makes when the admin saves the settings (§10.2): passes only on a 200 whose
/// body is byte-equal to the plaintext, within one second.
pub async fn verify_url(client: &reqwest::Client, target: &EventTarget, timestamp: i64) -> bool {
    let mut rng = rand::thread_rng();
    // Observed plaintexts are 19–23 digit decimal strings (§10.10).
    let len = rng.gen_range(19..=23);
    let mut plain: String = (0..len)
        .map(|_| char::from(rng.gen_range(b'0'..=b'9')))
        .collect();
    plain.replace_range(..1, "1");
    let random = target.prefix.random();
    let echostr = target.cipher.encrypt(plain.as_bytes(), &random);
    let timestamp = timestamp.to_string();
    let nonce = random_nonce();
    let signature = target.cipher.signature(&timestamp, &nonce, &echostr);
    let url = with_query(
        &target.url,
        &[
            ("msg_signature", &signature),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &echostr),
        ],
    );
    let started = Instant::now();
    let Ok(response) = client.get(url).timeout(VERIFY_TIMEOUT).send().await else {
        return false;
    };
    if response.status() != reqwest::StatusCode::OK {
        return false;
    }
    let Ok(body) = response.bytes().await else {
        return false;
    };
    started.elapsed() <= VERIFY_TIMEOUT && body.as_ref() == plain.as_bytes()
}

impl super::state::SimState {
    /// Seals `plaintext` for `source` with fresh randomness and the simulated clock; `None` when
    /// that source has no callback settings.
    pub fn seal_plaintext(&self, source: &EventSource, plaintext: &str) -> Option<EventRequest> {
        let target = self.event_targets.get(source)?;
        let agent_id = match source {
            EventSource::App(agent_id) => Some(agent_id.as_str()),
            // "仅应用相关的回调" carry AgentID [D90930].
            EventSource::ContactSync => None,
        };
        let random = target.prefix.random();
        let nonce = random_nonce();
        Some(seal(
            source.clone(),
            target,
            plaintext,
            Sealing {
                agent_id,
                timestamp: self.now(),
                nonce: &nonce,
                random: &random,
            },
        ))
    }

    /// Builds and seals `event` for `source`.
    pub fn seal_event(&self, source: &EventSource, event: &SimEvent) -> Option<EventRequest> {
        let agent_id = match source {
            EventSource::App(agent_id) => Some(agent_id.as_str()),
            EventSource::ContactSync => None,
        };
        let plaintext = event.to_xml(&self.directory.corp_id, agent_id, self.now());
        self.seal_plaintext(source, &plaintext)
    }

    /// The configured sources that take `event`: app events go to apps; `change_contact` to the
    /// assistant and to apps that take it. `in_range` narrows the apps.
    pub fn recipients(
        &self,
        event: &SimEvent,
        in_range: impl Fn(&str) -> bool,
    ) -> Vec<EventSource> {
        self.event_targets
            .iter()
            .filter(|(source, target)| match source {
                EventSource::App(agent_id) => {
                    in_range(agent_id) && (!event.is_change_contact() || target.change_contact)
                }
                EventSource::ContactSync => event.is_change_contact(),
            })
            .map(|(source, _)| source.clone())
            .collect()
    }

    /// Agent ids of the apps whose visible range holds `userid` now.
    pub fn apps_seeing(&self, userid: &str) -> Vec<String> {
        self.directory
            .apps
            .iter()
            .filter(|app| self.directory.userid_visible(app, userid))
            .map(|app| app.agent_id.clone())
            .collect()
    }
}
