//! The console's templates (compiled in, rendered with minijinja like `pages/`) and the frame
//! every page shares: language, strings, the administrator and their CSRF token.

use minijinja::{context, Environment, Value};

use super::text::strings;
use super::Administrator;
use crate::clock::UnixTime;
use crate::pages::Lang;

/// Compiled templates, built once at start-up.
pub struct ConsolePages {
    env: Environment<'static>,
}

impl std::fmt::Debug for ConsolePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsolePages")
    }
}

/// What every page shows around its content.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub lang: Lang,
    /// The issuer's path prefix (`""` or `/sso`), before every link.
    pub base: &'a str,
    pub admin: Option<&'a Administrator>,
    /// Which navigation entry is current.
    pub nav: &'a str,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("clients.html", include_str!("templates/clients.html")),
    (
        "client_form.html",
        include_str!("templates/client_form.html"),
    ),
    ("client_new.html", include_str!("templates/client_new.html")),
    (
        "client_detail.html",
        include_str!("templates/client_detail.html"),
    ),
    (
        "client_delete.html",
        include_str!("templates/client_delete.html"),
    ),
    (
        "client_secret.html",
        include_str!("templates/client_secret.html"),
    ),
    ("people.html", include_str!("templates/people.html")),
    ("person.html", include_str!("templates/person.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("status.html", include_str!("templates/status.html")),
];

impl ConsolePages {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        // A page shows what it was given; a missing optional part (no client on an error
        // page) renders as nothing rather than failing the whole page.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("datetime", datetime);
        env.add_filter("urlencode", |value: &str| path_segment(value));
        Ok(Self { env })
    }

    /// Renders `name` with `content` inside the frame; a template failure is logged and shows a
    /// bare line rather than nothing.
    pub fn render(&self, name: &str, frame: Frame<'_>, content: Value) -> String {
        let (html_lang, other_lang_code) = match frame.lang {
            Lang::Zh => ("zh-CN", "en"),
            Lang::En => ("en", "zh"),
        };
        let admin = frame.admin.map(|a| {
            context! { sub => a.sub, userid => a.userid, name => a.name }
        });
        let csrf = frame.admin.map(|a| a.csrf.as_str());
        self.env
            .get_template(name)
            .and_then(|t| {
                t.render(context! {
                    t => strings(frame.lang), html_lang, other_lang_code, base => frame.base,
                    admin, csrf, nav => frame.nav, ..content
                })
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, template = name, "console template failed");
                "wecom-oidc console: this page could not be shown".to_owned()
            })
    }
}

/// What a path segment or query value keeps unescaped: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `value` percent-encoded for a path segment or a query value.
pub fn path_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string()
}

/// `2026-12-06 20:15:03` (UTC) from Unix seconds; `—` for none or 0.
fn datetime(value: Option<i64>) -> String {
    value
        .filter(|at| *at > 0)
        .and_then(|at| actix_web::cookie::time::OffsetDateTime::from_unix_timestamp(at).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| "—".to_owned())
}

/// Unix seconds from the `YYYY-MM-DDTHH:MM[:SS]` of an `<input type="datetime-local">`, read as
/// UTC; `None` when it is not one.
pub fn parse_datetime_local(raw: &str) -> Option<UnixTime> {
    use actix_web::cookie::time::{Date, Month, PrimitiveDateTime, Time};
    let (date, time) = raw.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i32>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':').map(str::parse::<u8>);
    let (hour, minute) = (time.next()?.ok()?, time.next()?.ok()?);
    let second = time.next().transpose().ok()?.unwrap_or(0);
    let date = Date::from_calendar_date(
        year,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// The `YYYY-MM-DDTHH:MM` an `<input type="datetime-local">` shows for Unix seconds (UTC).
pub fn datetime_local(at: UnixTime) -> String {
    datetime(Some(at))
        .replacen(' ', "T", 1)
        .get(..16)
        .map(str::to_owned)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_and_shown_in_utc_round_trip() {
        assert_eq!(
            parse_datetime_local("2026-12-06T20:15"),
            Some(1_796_588_100)
        );
        assert_eq!(
            parse_datetime_local("2026-12-06T20:15:09"),
            Some(1_796_588_109)
        );
        assert_eq!(datetime(Some(1_796_588_109)), "2026-12-06 20:15:09");
        assert_eq!(datetime_local(1_796_588_109), "2026-12-06T20:15");
        for bad in [
            "",
            "2026-12-06",
            "2026-13-01T00:00",
            "x-y-zT1:2",
            "2026-12-06T25:00",
        ] {
            assert_eq!(parse_datetime_local(bad), None, "{bad:?}");
        }
        assert_eq!(datetime(None), "—");
    }

    #[test]
    fn every_template_renders_in_both_languages_and_escapes() {
        let pages = ConsolePages::new().unwrap();
        let admin = Administrator {
            sub: "zhangsan".into(),
            userid: "ZhangSan".into(),
            name: "<b>张三</b>".into(),
            auth_time: 0,
            csrf: "token".into(),
        };
        for lang in [Lang::Zh, Lang::En] {
            let frame = Frame {
                lang,
                base: "/sso",
                admin: Some(&admin),
                nav: "clients",
            };
            for (name, _) in TEMPLATES {
                if *name == "layout.html" || *name == "client_form.html" {
                    continue;
                }
                let content = context! {
                    client => context! { client_id => "c-1", name => "<i>app</i>", has_secret => true },
                    person => context! { sub => "zhangsan", userid => "ZhangSan", name => "张三", groups => ["tag:SRE"] },
                    keys => [context! { kid => "k1", signing => true, published => true }],
                    title => "title", body => "body", secret => "s3cret",
                };
                let html = pages.render(name, frame, content);
                assert!(html.contains("</html>"), "{name} in {lang:?}: {html}");
                assert!(html.contains("&lt;b&gt;张三"), "{name} escapes");
                assert!(!html.contains("<script"), "{name} has no script");
            }
        }
    }
}
