//! # mturk — a small admin tool for the Amazon Mechanical Turk backend
//!
//! Shows the requester's balance, lists HITs (with the crowdcore effect that posted each one,
//! read from its `RequesterAnnotation`), and expires every HIT of a session — the clean-up after
//! a study, or after a crashed one. It talks to MTurk through `crowdcore-mturk`, exactly as the
//! engine does; credentials come from the standard AWS chain (`AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, …) and are never printed.
//!
//! ```text
//! # the requester sandbox (play money)
//! cargo run -p crowdcore-examples --example mturk -- --sandbox balance
//! cargo run -p crowdcore-examples --example mturk -- --sandbox list-hits
//! cargo run -p crowdcore-examples --example mturk -- --sandbox list-hits --session 0190c3a4-…
//! cargo run -p crowdcore-examples --example mturk -- --sandbox expire-session 0190c3a4-…
//! # any endpoint speaking the MTurk API, such as a local fake
//! cargo run -p crowdcore-examples --example mturk -- --endpoint-url http://127.0.0.1:8080 balance
//! ```
//!
//! Without `--sandbox` or `--endpoint-url` it talks to production MTurk. Output goes to
//! stdout (tab-separated for `list-hits`, or JSON lines with `--json`); logs to stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crowdcore::platform::Platform;
use crowdcore_mturk::{Endpoint, MturkConfig, MturkPlatform};

#[derive(Parser, Debug)]
#[command(about = "Balance, HITs and clean-up on Amazon Mechanical Turk")]
struct Args {
    /// Use the requester sandbox.
    #[arg(long, conflicts_with = "endpoint_url")]
    sandbox: bool,
    /// Use this endpoint (a local fake, a proxy) instead of MTurk's.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The AWS region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The available balance, in dollars.
    Balance,
    /// Every HIT of the account: id, status, assignments (max, open, held, done), expiry,
    /// the crowdcore effect that posted it, title.
    ListHits {
        /// Only HITs posted by this session.
        #[arg(long)]
        session: Option<String>,
        /// One JSON object a line instead of tab-separated columns.
        #[arg(long)]
        json: bool,
    },
    /// Expires every HIT the session posted (workers holding assignments keep them).
    ExpireSession {
        /// The session id (a HIT is the session's when its annotation's key starts with
        /// `<session>/`).
        session: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let endpoint = match (&args.endpoint_url, args.sandbox) {
        (Some(url), _) => Endpoint::Url(url.clone()),
        (None, true) => Endpoint::Sandbox,
        (None, false) => Endpoint::Production,
    };
    eprintln!("endpoint: {}", endpoint.url());
    let mut config = MturkConfig::new(endpoint);
    config.region = args.region.clone();
    let mturk = MturkPlatform::connect(config).await;
    match run(&mturk, args.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    mturk: &MturkPlatform,
    command: Command,
) -> Result<(), crowdcore::platform::PlatformError> {
    match command {
        Command::Balance => {
            let balance = mturk.balance().await?;
            println!("{}", crowdcore_mturk::wire::dollars(balance)?);
        }
        Command::ListHits { session, json } => {
            let hits = mturk.list_hits().await?;
            for h in hits.iter().filter(|h| {
                session.as_deref().is_none_or(|s| {
                    h.key
                        .as_deref()
                        .is_some_and(|k| crowdcore_mturk::wire::key_in_session(k, s))
                })
            }) {
                let (open, held, done) = h.counts;
                if json {
                    let line = serde_json::json!({
                        "hit": h.hit,
                        "status": h.status,
                        "max_assignments": h.max_assignments,
                        "open": open,
                        "held": held,
                        "done": done,
                        "expires_at_ms": h.expires_at_ms,
                        "effect": h.key,
                        "title": h.title,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{}\t{}\t{}\t{open}\t{held}\t{done}\t{}\t{}\t{}",
                        h.hit,
                        h.status,
                        h.max_assignments,
                        h.expires_at_ms.map_or("-".into(), |t| t.to_string()),
                        h.key.as_deref().unwrap_or("-"),
                        h.title
                    );
                }
            }
            eprintln!("{} HITs on the account", hits.len());
        }
        Command::ExpireSession { session } => {
            let expired = mturk.expire_session(&session).await?;
            for hit in &expired {
                println!("{hit}");
            }
            eprintln!("expired {} HITs of session {session}", expired.len());
        }
    }
    Ok(())
}
