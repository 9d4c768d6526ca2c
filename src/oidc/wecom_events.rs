//! What each WeCom event means for the members who signed in here (`wecom-events.md` §10.8).
//!
//! Every event is a hint: where it says less than "this member is gone" (an `unsubscribe` may only
//! mean the member left the app's visible range), WeCom is asked with `user/get` before anything is
//! revoked. Events signed by WeCom that say a member was deleted, disabled or has left are acted on
//! at once. Renames are applied in the order received, before any recheck under the new userid.

use crate::clock::UnixTime;
use crate::storage::StorageError;
use crate::wecom::events::{EventMessage, WeComEvent};

use super::membership::MemberNews;
use super::Provider;

/// The `update_user` statuses (wecom-events.md §10.5.8).
const STATUS_DISABLED: i64 = 2;
const STATUS_NOT_ACTIVATED: i64 = 4;
const STATUS_LEFT: i64 = 5;

/// What the provider does with one event, decided without I/O.
fn news_of(event: &WeComEvent) -> Vec<MemberNews> {
    match event {
        WeComEvent::Unsubscribe { userid } => vec![MemberNews::Changed {
            userid: userid.clone(),
        }],
        WeComEvent::UserDeleted { userid } => vec![MemberNews::Deleted {
            userid: userid.clone(),
        }],
        WeComEvent::UserUpdated {
            userid,
            new_userid,
            status,
            departments_changed,
        } => {
            let mut news = Vec::new();
            let current = match new_userid {
                Some(new_userid) => {
                    news.push(MemberNews::Renamed {
                        userid: userid.clone(),
                        new_userid: new_userid.clone(),
                    });
                    new_userid.clone()
                }
                None => userid.clone(),
            };
            match status {
                Some(STATUS_DISABLED) => news.push(MemberNews::Gone {
                    userid: current,
                    reason: "member_disabled",
                }),
                Some(STATUS_LEFT) => news.push(MemberNews::Gone {
                    userid: current,
                    reason: "member_left",
                }),
                // 4 is also sent when a member leaves and unfollows: ask WeCom.
                Some(STATUS_NOT_ACTIVATED) => news.push(MemberNews::Changed { userid: current }),
                _ if *departments_changed => news.push(MemberNews::Changed { userid: current }),
                _ => {}
            }
            news
        }
        WeComEvent::Subscribe { .. }
        | WeComEvent::EnterAgent { .. }
        | WeComEvent::UserCreated { .. }
        | WeComEvent::PartyChanged
        | WeComEvent::TagChanged { .. }
        | WeComEvent::BatchJobResult { .. }
        | WeComEvent::Other { .. } => Vec::new(),
    }
}

/// Whether the event may change department or tag data the provider has cached.
fn touches_directory(event: &WeComEvent) -> bool {
    matches!(
        event,
        WeComEvent::PartyChanged
            | WeComEvent::TagChanged { .. }
            | WeComEvent::BatchJobResult { .. }
            | WeComEvent::UserUpdated {
                departments_changed: true,
                ..
            }
    )
}

impl Provider {
    /// Acts on one authenticated, decrypted WeCom event (the caller has already made sure it is
    /// processed once).
    #[tracing::instrument(skip_all)]
    pub async fn handle_wecom_event(
        &self,
        message: &EventMessage,
        now: UnixTime,
    ) -> Result<(), StorageError> {
        let event = &message.event;
        tracing::info!(?event, "WeCom event");
        if touches_directory(event) {
            if let Some(wecom) = &self.wecom {
                wecom.invalidate_directory();
            }
        }
        if let WeComEvent::BatchJobResult { job_type } = event {
            // A bulk import (replace_user can delete many members at once) names nobody: every
            // member is rechecked by the sweep, refreshes and SSO reuses.
            let members = self.store.mark_all_members_unchecked().await?;
            tracing::info!(
                job_type,
                members,
                "WeCom batch job: every member due for a recheck"
            );
        }
        for news in news_of(event) {
            self.apply_member_news(news, now).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updated(new_userid: Option<&str>, status: Option<i64>, moved: bool) -> WeComEvent {
        WeComEvent::UserUpdated {
            userid: "zhangsan".into(),
            new_userid: new_userid.map(str::to_owned),
            status,
            departments_changed: moved,
        }
    }

    #[test]
    fn disabling_and_leaving_revoke_at_once_while_vaguer_news_is_checked_with_wecom() {
        assert_eq!(
            news_of(&updated(None, Some(2), false)),
            vec![MemberNews::Gone {
                userid: "zhangsan".into(),
                reason: "member_disabled"
            }]
        );
        assert_eq!(
            news_of(&updated(None, Some(5), false)),
            vec![MemberNews::Gone {
                userid: "zhangsan".into(),
                reason: "member_left"
            }]
        );
        for vague in [
            updated(None, Some(4), false),
            updated(None, None, true),
            WeComEvent::Unsubscribe {
                userid: "zhangsan".into(),
            },
        ] {
            assert_eq!(
                news_of(&vague),
                vec![MemberNews::Changed {
                    userid: "zhangsan".into()
                }]
            );
        }
        assert!(news_of(&updated(None, Some(1), false)).is_empty());
    }

    #[test]
    fn a_rename_comes_first_and_later_news_uses_the_new_userid() {
        assert_eq!(
            news_of(&updated(Some("zhangsan01"), Some(2), true)),
            vec![
                MemberNews::Renamed {
                    userid: "zhangsan".into(),
                    new_userid: "zhangsan01".into()
                },
                MemberNews::Gone {
                    userid: "zhangsan01".into(),
                    reason: "member_disabled"
                }
            ]
        );
    }
}
