//! `WECOM_PROXY`: the WeCom API calls leave through an HTTP proxy (a fixed egress WeCom trusts),
//! and `check` says so.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wecom_oidc::config::Config;

use crate::helpers::{TestApp, AGENT_ID, AGENT_SECRET, CORP_ID};

/// A tiny forward proxy for plain-HTTP targets: reads one absolute-form request
/// (`GET http://host:port/path HTTP/1.1`), sends it on in origin form with `Connection: close`,
/// and copies the answer back. Counts the requests it forwarded.
async fn start_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&forwarded);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let _ = forward(client, &count).await;
            });
        }
    });
    (address, forwarded)
}

async fn forward(client: TcpStream, count: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(client);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let url = url::Url::parse(target).map_err(std::io::Error::other)?;
    let mut head = format!(
        "{method} {}{} HTTP/1.1\r\nConnection: close\r\n",
        url.path(),
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("proxy-") {
            continue;
        }
        if let Some(n) = lower.strip_prefix("content-length:") {
            content_length = n.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    head.push_str("\r\n");
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).await?;
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(80)
    );
    let mut upstream = TcpStream::connect(authority).await?;
    upstream.write_all(head.as_bytes()).await?;
    upstream.write_all(&body).await?;
    count.fetch_add(1, Ordering::SeqCst);
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    let mut client = reader.into_inner();
    client.write_all(&answer).await?;
    client.shutdown().await
}

#[tokio::test]
async fn wecom_api_calls_go_through_wecom_proxy_and_sign_in_works() {
    let (proxy, forwarded) = start_proxy().await;
    let app = TestApp::spawn_with(&[("WECOM_PROXY", &proxy)]).await;
    let client = app.confidential_client().await;

    let callback = app.sign_in(&client, "wangwu", &[]).await;

    assert!(callback.code.is_some(), "sign-in works through the proxy");
    assert!(
        forwarded.load(Ordering::SeqCst) >= 2,
        "gettoken and the member lookups went through the proxy"
    );
}

#[tokio::test]
async fn check_reports_the_proxy_it_used() {
    let (proxy, forwarded) = start_proxy().await;
    let app = TestApp::spawn().await;
    let sim = app.simulator.base_url().to_string();
    let config = Config::from_pairs([
        ("WECOM_CORP_ID", CORP_ID),
        ("WECOM_CORP_SECRET", AGENT_SECRET),
        ("WECOM_AGENT_ID", AGENT_ID),
        ("WECOM_API_BASE", sim.trim_end_matches('/')),
        ("WECOM_PROXY", &proxy),
    ])
    .unwrap();
    let mut out = Vec::new();

    let ok = wecom_oidc::check::run(&config, None, &mut out)
        .await
        .unwrap();

    let report = String::from_utf8(out).unwrap();
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("through the proxy {proxy}")),
        "{report}"
    );
    assert!(forwarded.load(Ordering::SeqCst) >= 1);
}
