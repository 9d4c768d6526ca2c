//! WeCom's server-side event callbacks (接收事件服务器): verifying the callback URL and opening
//! the signed, encrypted events WeCom POSTs when members change (§10 of `wecom-events.md`).
//!
//! ```text
//! GET  ?msg_signature&timestamp&nonce&echostr ─► EventReceiver::verify_url ─► echo plaintext
//! POST ?msg_signature&timestamp&nonce + <xml><Encrypt>…</Encrypt></xml>
//!      ─► EventReceiver::open: envelope (xml.rs) ─► signature picks the channel ─► decrypt
//!         (crypto.rs) ─► event XML (xml.rs) ─► OpenedEvent { channel, message, digest }
//! ```
//!
//! Nothing here decides what an event means for a member's access; that is the caller's. No
//! Token, key or plaintext reaches a log line or `Debug` output from this module.

mod crypto;
mod xml;

#[cfg(test)]
mod tests;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{EventChannelSettings, EventSettings};
pub use crypto::{EventCipher, EventError};
pub use xml::{parse_envelope, parse_event, Envelope, EventMessage, WeComEvent, MAX_BODY_BYTES};

/// Which configured source a callback came from; its signature tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The self-built app's 接收消息 / 设置API接收 (WECOM_EVENT_TOKEN, WECOM_EVENT_AES_KEY).
    App,
    /// The 通讯录同步 assistant's 接收事件服务器 (WECOM_CONTACT_EVENT_*).
    ContactSync,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::ContactSync => "contact_sync",
        }
    }
}

/// The query of a callback, as actix's `Query` extractor gives it: percent-decoded exactly once
/// ("参数值需要做Urldecode处理" \[D90930\]). Unknown parameters are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventQuery {
    pub msg_signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
}

impl EventQuery {
    fn require<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, EventError> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(EventError::MissingParameter(name))
    }
}

/// A verified, decrypted event.
#[derive(Debug, Clone)]
pub struct OpenedEvent {
    pub channel: Channel,
    pub message: EventMessage,
    /// SHA-256 (lowercase hex) of the decrypted message: the dedupe key, since WeCom's own
    /// `FromUserName + CreateTime` collides for contact events in the same second (§10.6).
    pub digest: String,
    /// The query's signed `timestamp` (`None` when it is not a number).
    pub timestamp: Option<i64>,
}

/// How far an event's signed `timestamp` may be from our clock, either way, for the event to
/// count. WeCom documents no window (§10.6) and no official sample checks one; WeCom's own
/// redeliveries come within seconds, so five minutes leave room for clock skew while a delivery
/// captured on its way (a proxy log) cannot be replayed later.
pub const EVENT_WINDOW_SECS: i64 = 300;

impl OpenedEvent {
    /// Whether the signed timestamp lies within [`EVENT_WINDOW_SECS`] of `now`. The signature
    /// covers the timestamp, so a replayed delivery cannot be given a fresh one.
    pub fn is_fresh(&self, now: i64) -> bool {
        self.timestamp
            .is_some_and(|sent| (now - sent).abs() <= EVENT_WINDOW_SECS)
    }
}

/// The configured callback channels of one corporation, each with receiveid = CorpID.
#[derive(Debug, Clone)]
pub struct EventReceiver {
    channels: Vec<(Channel, EventCipher)>,
}

impl EventReceiver {
    /// The receiver for the configured channels; `None` when none is configured.
    pub fn from_settings(
        corp_id: &str,
        settings: &EventSettings,
    ) -> Result<Option<EventReceiver>, EventError> {
        let cipher = |channel: &EventChannelSettings| {
            use secrecy::ExposeSecret;
            EventCipher::new(
                channel.token.expose_secret(),
                channel.aes_key.expose_secret(),
                corp_id,
            )
        };
        let mut channels = Vec::new();
        if let Some(app) = &settings.app {
            channels.push((Channel::App, cipher(app)?));
        }
        if let Some(contact) = &settings.contact_sync {
            channels.push((Channel::ContactSync, cipher(contact)?));
        }
        Ok((!channels.is_empty()).then(|| EventReceiver::new(channels)))
    }

    pub fn new(channels: Vec<(Channel, EventCipher)>) -> EventReceiver {
        EventReceiver { channels }
    }

    /// The channels whose signature matches, in configuration order (two only when both share a
    /// Token; decryption then tells them apart).
    fn signed_by(
        &self,
        query: &EventQuery,
        encrypted: &str,
    ) -> Result<Vec<(Channel, &EventCipher)>, EventError> {
        let signature = EventQuery::require(&query.msg_signature, "msg_signature")?;
        let timestamp = EventQuery::require(&query.timestamp, "timestamp")?;
        let nonce = EventQuery::require(&query.nonce, "nonce")?;
        let matching: Vec<_> = self
            .channels
            .iter()
            .filter(|(_, cipher)| cipher.verify_signature(signature, timestamp, nonce, encrypted))
            .map(|(channel, cipher)| (*channel, cipher))
            .collect();
        if matching.is_empty() {
            return Err(EventError::BadSignature);
        }
        Ok(matching)
    }

    /// Opens with the first matching channel that decrypts; otherwise the last failure.
    fn decrypt(
        &self,
        query: &EventQuery,
        encrypted: &str,
    ) -> Result<(Channel, Vec<u8>), EventError> {
        let mut failure = EventError::BadSignature;
        for (channel, cipher) in self.signed_by(query, encrypted)? {
            match cipher.decrypt(encrypted) {
                Ok(plain) => return Ok((channel, plain)),
                Err(error) => failure = error,
            }
        }
        Err(failure)
    }

    /// The URL check WeCom makes when the admin saves the settings (§10.2): returns the channel
    /// and the plaintext to answer with, byte for byte (no quotes, BOM or newline).
    pub fn verify_url(&self, query: &EventQuery) -> Result<(Channel, Vec<u8>), EventError> {
        let echostr = EventQuery::require(&query.echostr, "echostr")?;
        // A decoder that reads `+` as a space (as PHP's once did) broke the base64; `+` is the
        // only base64 character that can turn into a space (§10.2).
        let echostr = echostr.replace(' ', "+");
        self.decrypt(query, &echostr)
    }

    /// Verifies and opens an event POST (§10.4, §10.3.5). The body limit is checked before
    /// anything is parsed.
    pub fn open(&self, query: &EventQuery, body: &[u8]) -> Result<OpenedEvent, EventError> {
        let envelope = parse_envelope(body)?;
        let (channel, plain) = self.decrypt(query, &envelope.encrypt)?;
        let mut message = parse_event(&plain)?;
        // `change_contact` payloads carry no AgentID; the envelope names the app they reached
        // (as WxJava does, §10.4).
        if message.agent_id.is_none() {
            message.agent_id = envelope.agent_id;
        }
        Ok(OpenedEvent {
            channel,
            message,
            digest: hex::encode(Sha256::digest(&plain)),
            timestamp: query.timestamp.as_deref().and_then(|t| t.parse().ok()),
        })
    }
}
