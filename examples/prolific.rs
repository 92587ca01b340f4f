//! # prolific — a small admin tool for the Prolific backend
//!
//! Shows the workspace's balance, lists a project's studies (with the crowdcore session that
//! created each one, read from its `internal_name`), and stops a session's study — the
//! clean-up after a study, or after a crashed one. It talks to Prolific through
//! `crowdcore-prolific`, exactly as the engine does; the token comes from
//! `PROLIFIC_API_TOKEN` and is never printed.
//!
//! ```text
//! cargo run -p crowdcore-examples --example prolific -- balance --workspace <id>
//! cargo run -p crowdcore-examples --example prolific -- studies --project <id>
//! cargo run -p crowdcore-examples --example prolific -- stop --project <id> --session pilot-1
//! # any URL speaking Prolific's API, such as a local fake
//! cargo run -p crowdcore-examples --example prolific -- --prolific-url http://127.0.0.1:8080 balance --workspace ws1
//! ```
//!
//! Output goes to stdout (tab-separated, or JSON lines with `--json`); logs to stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crowdcore_prolific::{
    ClientConfig, Credentials, PRODUCTION_URL, ProlificClient, ProlificPlatform,
    ProlificPlatformConfig, major_units,
};

#[derive(Parser, Debug)]
#[command(about = "Balance, studies and clean-up on Prolific")]
struct Args {
    /// The API origin (a local fake, a proxy) instead of Prolific's.
    #[arg(long, default_value = PRODUCTION_URL)]
    prolific_url: String,
    /// JSON lines instead of tab-separated text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The workspace's available and total balance.
    Balance {
        /// The workspace.
        #[arg(long)]
        workspace: String,
    },
    /// The project's studies: id, status, places taken / total, the crowdcore session.
    Studies {
        /// The project.
        #[arg(long)]
        project: String,
    },
    /// Stops the session's study for good (no new participants; those at work may finish).
    Stop {
        /// The project the study is in.
        #[arg(long)]
        project: String,
        /// The crowdcore session that created it.
        #[arg(long)]
        session: String,
    },
}

/// The crowdcore session of a study's `internal_name` (`crowdcore:{session}:{key}`).
fn session_of(internal_name: Option<&str>) -> Option<&str> {
    let rest = internal_name?.strip_prefix("crowdcore:")?;
    // Keys are `{session}/{seq}` or a digest: the session is what precedes the last `:`.
    Some(rest.rsplit_once(':').map_or(rest, |(s, _)| s))
}

async fn run(args: Args) -> Result<(), String> {
    let credentials = Credentials::from_env().map_err(|e| e.to_string())?;
    let client = ProlificClient::new(ClientConfig::new(args.prolific_url.clone(), credentials))
        .map_err(|e| e.to_string())?;
    match args.command {
        Command::Balance { workspace } => {
            let b = client
                .balance(&workspace)
                .await
                .map_err(|e| e.to_string())?;
            let currency =
                crowdcore::model::Currency::new(&b.currency_code).map_err(|e| e.to_string())?;
            let money = |minor| major_units(crowdcore::Money::new(minor, currency));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "currency": b.currency_code,
                        "available_minor": b.available_balance,
                        "total_minor": b.total_balance,
                    })
                );
            } else {
                println!(
                    "available\t{} {}\ntotal\t{} {}",
                    money(b.available_balance),
                    b.currency_code,
                    money(b.total_balance),
                    b.currency_code
                );
            }
        }
        Command::Studies { project } => {
            let studies = client
                .list_project_studies(&project)
                .await
                .map_err(|e| e.to_string())?;
            for s in studies {
                let session = session_of(s.internal_name.as_deref()).unwrap_or("-");
                let status = serde_json::to_value(&s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": s.id, "status": status, "places_taken": s.places_taken,
                            "total_available_places": s.total_available_places,
                            "session": session, "name": s.name,
                        })
                    );
                } else {
                    println!(
                        "{}\t{status}\t{}/{}\t{session}\t{}",
                        s.id, s.places_taken, s.total_available_places, s.name
                    );
                }
            }
        }
        Command::Stop { project, session } => {
            // The same lookup the platform makes before creating a study.
            let platform =
                ProlificPlatform::new(client, ProlificPlatformConfig::new("", project, &session));
            match platform.stop_study().await.map_err(|e| e.to_string())? {
                Some(study) => {
                    let status = serde_json::to_value(&study.status).unwrap_or_default();
                    println!("{}\t{}", study.id, status.as_str().unwrap_or_default());
                }
                None => return Err(format!("no study of session {session} in this project")),
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prolific: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_read_from_internal_names() {
        assert_eq!(
            session_of(Some("crowdcore:pilot-1:pilot-1/3")),
            Some("pilot-1")
        );
        assert_eq!(session_of(Some("crowdcore:pilot-1")), Some("pilot-1"));
        assert_eq!(session_of(Some("my own study")), None);
        assert_eq!(session_of(None), None);
    }
}
