//! The XML of a callback: the POST envelope (`<Encrypt>`, `ToUserName`, `AgentID`, §10.4) and the
//! decrypted event (§10.5), read into [`EventMessage`].
//!
//! Read tolerantly, as WeCom writes the same element with CDATA or as bare text, in any order, with
//! fields added over the years; refused firmly: no DOCTYPE or entity declarations (so no entity
//! expansion of any kind), no processing instructions, one `<xml>` root, at most 64 KiB.

use std::collections::HashMap;

use quick_xml::events::{BytesRef, Event};
use quick_xml::Reader;

use super::crypto::EventError;

/// Policy: WeCom's events are a few KiB at most; anything larger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Deeper than any WeCom shape (`ExtAttr/Item/Text/Value` is 4 below the root).
const MAX_DEPTH: usize = 8;

/// What a callback's decrypted message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeComEvent {
    /// The member can use the app again: joined the corporation or the app's visible range \[D90240\].
    Subscribe { userid: String },
    /// The member left the app's visible range, left the corporation, or was disabled; WeCom does
    /// not say which \[D90240\].
    Unsubscribe { userid: String },
    /// The member opened the app (only with 上报进入应用事件).
    EnterAgent { userid: String },
    /// `change_contact` / `create_user`.
    UserCreated { userid: String },
    /// `change_contact` / `update_user`. `userid` is the id **before** the change; absent elements
    /// mean "unchanged", not "cleared" (§10.5.3).
    UserUpdated {
        userid: String,
        /// `NewUserID`: the member's userid from now on.
        new_userid: Option<String>,
        /// 1 active, 2 disabled, 4 not activated, 5 left the corporation.
        status: Option<i64>,
        /// `Department` was present: the member moved.
        departments_changed: bool,
    },
    /// `change_contact` / `delete_user`.
    UserDeleted { userid: String },
    /// `change_contact` / `create_party`, `update_party` or `delete_party`.
    PartyChanged,
    /// `change_contact` / `update_tag`.
    TagChanged { tag_id: u64 },
    /// An async directory job finished (`sync_user`, `replace_user`, `invite_user`,
    /// `replace_party`); a `replace_user` may have removed many members at once.
    BatchJobResult { job_type: String },
    /// Anything else: `event` is the `Event` value (or, for a plain message, its `MsgType`),
    /// `change_type` the `ChangeType` of an unknown `change_contact`.
    Other {
        event: String,
        change_type: Option<String>,
    },
}

/// A decrypted callback message: the header plus what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    /// The CorpID.
    pub to_user_name: String,
    /// Unix seconds; one-second resolution, so it cannot order events.
    pub create_time: Option<i64>,
    /// The app, for app events; after [`super::EventReceiver::open`], the envelope's AgentID when
    /// the payload has none. Absent on the contact-sync channel.
    pub agent_id: Option<String>,
    pub event: WeComEvent,
}

/// The POST body WeCom sends (§10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub encrypt: String,
    pub to_user_name: Option<String>,
    pub agent_id: Option<String>,
}

/// Leaf elements of one document, keyed by their lowercase path below the root
/// (`encrypt`, `batchjob/jobtype`), so names match case-insensitively: WeCom's pages spell the
/// same element `UserID` and `UserId` (§10.1). The first occurrence of a repeated path wins.
#[derive(Debug, Default)]
struct Fields(HashMap<String, String>);

impl Fields {
    /// The element's text, trimmed: bare-text values may carry the document's indentation.
    fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(|v| v.trim())
    }

    fn non_empty(&self, path: &str) -> Option<&str> {
        self.get(path).filter(|v| !v.is_empty())
    }

    fn required(&self, path: &str, problem: &'static str) -> Result<String, EventError> {
        self.non_empty(path)
            .map(str::to_owned)
            .ok_or(EventError::Xml(problem))
    }
}

/// One open element while reading.
struct Open {
    name: String,
    text: String,
    has_children: bool,
}

fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, EventError> {
    if reference.is_char_ref() {
        return reference
            .resolve_char_ref()
            .ok()
            .flatten()
            .ok_or(EventError::Xml("invalid character reference"));
    }
    // Only XML's five predefined entities: declared entities are never expanded.
    match &**reference {
        b"amp" => Ok('&'),
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"quot" => Ok('"'),
        b"apos" => Ok('\''),
        _ => Err(EventError::Xml("unknown entity reference")),
    }
}

/// Reads a `<xml>…</xml>` document into its leaf fields.
fn read_fields(input: &[u8]) -> Result<Fields, EventError> {
    if input.len() > MAX_BODY_BYTES {
        return Err(EventError::TooLarge(MAX_BODY_BYTES));
    }
    let text = std::str::from_utf8(input).map_err(|_| EventError::Xml("not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    let mut fields = Fields::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut root_seen = false;
    let mut root_closed = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| EventError::Xml("not well-formed"))?;
        match event {
            // A DTD could declare entities (billion laughs, external files): never accepted.
            Event::DocType(_) => return Err(EventError::Xml("DOCTYPE refused")),
            Event::PI(_) => return Err(EventError::Xml("processing instruction refused")),
            Event::Decl(_) if !root_seen => {}
            Event::Decl(_) => return Err(EventError::Xml("misplaced XML declaration")),
            Event::Comment(_) => {}
            Event::Start(_) | Event::Empty(_) if root_closed => {
                return Err(EventError::Xml("content after the root element"))
            }
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_DEPTH => {
                return Err(EventError::Xml("nested too deeply"))
            }
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).to_lowercase();
                if stack.is_empty() {
                    if root_seen || name != "xml" {
                        return Err(EventError::Xml("the root element must be <xml>"));
                    }
                    root_seen = true;
                }
                if let Some(parent) = stack.last_mut() {
                    parent.has_children = true;
                }
                stack.push(Open {
                    name,
                    text: String::new(),
                    has_children: false,
                });
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).to_lowercase();
                let Some(parent) = stack.last_mut() else {
                    return Err(EventError::Xml("the root element must be <xml>"));
                };
                parent.has_children = true;
                let path = path_of(&stack, &name);
                fields.0.entry(path).or_default();
            }
            Event::Text(text) => {
                let text = text
                    .decode()
                    .map_err(|_| EventError::Xml("undecodable text"))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(EventError::Xml("text outside the root element")),
                }
            }
            Event::CData(data) => {
                let data = data
                    .decode()
                    .map_err(|_| EventError::Xml("undecodable CDATA"))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&data),
                    None => return Err(EventError::Xml("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference)?;
                match stack.last_mut() {
                    Some(open) => open.text.push(resolved),
                    None => return Err(EventError::Xml("reference outside the root element")),
                }
            }
            Event::End(_) => {
                let Some(open) = stack.pop() else {
                    return Err(EventError::Xml("unbalanced end tag"));
                };
                if stack.is_empty() {
                    root_closed = true;
                } else if !open.has_children {
                    let path = path_of(&stack, &open.name);
                    fields.0.entry(path).or_insert(open.text);
                }
            }
            Event::Eof if root_closed => return Ok(fields),
            Event::Eof => return Err(EventError::Xml("truncated document")),
        }
    }
}

/// `a/b/name` for an element under the open elements `stack` (root excluded).
fn path_of(stack: &[Open], name: &str) -> String {
    stack
        .iter()
        .skip(1)
        .map(|open| open.name.as_str())
        .chain(std::iter::once(name))
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads the POST envelope: `Encrypt` is required, the rest optional (§10.4).
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, EventError> {
    let fields = read_fields(body)?;
    Ok(Envelope {
        encrypt: fields.required("encrypt", "no Encrypt element")?,
        to_user_name: fields.non_empty("tousername").map(str::to_owned),
        agent_id: fields.non_empty("agentid").map(str::to_owned),
    })
}

/// Reads a decrypted event message (§10.5).
pub fn parse_event(msg: &[u8]) -> Result<EventMessage, EventError> {
    let fields = read_fields(msg)?;
    let to_user_name = fields.required("tousername", "no ToUserName")?;
    let msg_type = fields.required("msgtype", "no MsgType")?;
    let create_time = match fields.non_empty("createtime") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| EventError::Xml("CreateTime is not a number"))?,
        ),
    };
    let agent_id = fields.non_empty("agentid").map(str::to_owned);
    let event = if msg_type.eq_ignore_ascii_case("event") {
        let name = fields.required("event", "no Event")?;
        classify(&fields, &name)?
    } else {
        WeComEvent::Other {
            event: msg_type,
            change_type: None,
        }
    };
    Ok(EventMessage {
        to_user_name,
        create_time,
        agent_id,
        event,
    })
}

fn classify(fields: &Fields, name: &str) -> Result<WeComEvent, EventError> {
    let from_user = || fields.required("fromusername", "no FromUserName");
    let userid = || fields.required("userid", "no UserID");
    Ok(match name.to_ascii_lowercase().as_str() {
        "subscribe" => WeComEvent::Subscribe {
            userid: from_user()?,
        },
        "unsubscribe" => WeComEvent::Unsubscribe {
            userid: from_user()?,
        },
        "enter_agent" => WeComEvent::EnterAgent {
            userid: from_user()?,
        },
        "batch_job_result" => WeComEvent::BatchJobResult {
            job_type: fields.required("batchjob/jobtype", "no BatchJob/JobType")?,
        },
        "change_contact" => {
            let change_type = fields.required("changetype", "no ChangeType")?;
            match change_type.to_ascii_lowercase().as_str() {
                "create_user" => WeComEvent::UserCreated { userid: userid()? },
                "update_user" => WeComEvent::UserUpdated {
                    userid: userid()?,
                    new_userid: fields.non_empty("newuserid").map(str::to_owned),
                    status: match fields.non_empty("status") {
                        None => None,
                        Some(raw) => Some(
                            raw.parse::<i64>()
                                .map_err(|_| EventError::Xml("Status is not a number"))?,
                        ),
                    },
                    departments_changed: fields.get("department").is_some(),
                },
                "delete_user" => WeComEvent::UserDeleted { userid: userid()? },
                "create_party" | "update_party" | "delete_party" => WeComEvent::PartyChanged,
                "update_tag" => WeComEvent::TagChanged {
                    tag_id: fields
                        .required("tagid", "no TagId")?
                        .parse()
                        .map_err(|_| EventError::Xml("TagId is not a number"))?,
                },
                _ => WeComEvent::Other {
                    event: name.to_owned(),
                    change_type: Some(change_type),
                },
            }
        }
        _ => WeComEvent::Other {
            event: name.to_owned(),
            change_type: None,
        },
    })
}
