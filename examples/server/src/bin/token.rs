//! `eventsync-token`: mints an access token for the reference server and prints it.
//!
//! ```text
//! eventsync-token --secret S --document doc-1 --client alice --rights write --ttl 3600
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use eventsync_server::auth::{validate_document_pattern, Authority, Claims, Rights};
use eventsync_server::limits::validate_client_id;

/// Mint an access token for the eventsync reference server.
#[derive(Debug, Parser)]
#[command(name = "eventsync-token", version)]
struct Args {
    /// The server's HMAC secret.
    #[arg(long, env = "EVENTSYNC_AUTH_SECRET", hide_env_values = true)]
    secret: String,
    /// The document the token is for, `*` for every document, or `PREFIX*` for the documents whose
    /// id starts with PREFIX (`board-42.*`).
    #[arg(long)]
    document: String,
    /// The client id the token binds to.
    #[arg(long)]
    client: String,
    /// What the token allows (write includes read).
    #[arg(long, value_enum, default_value_t = RightsArg::Read)]
    rights: RightsArg,
    /// Lifetime in seconds from now.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    ttl: u64,
    /// Absolute expiry in Unix seconds, instead of --ttl.
    #[arg(long, conflicts_with = "ttl")]
    exp: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RightsArg {
    Read,
    Write,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mint(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("eventsync-token: {message}");
            ExitCode::from(2)
        }
    }
}

fn mint(args: &Args) -> Result<String, String> {
    if args.secret.is_empty() {
        return Err("the secret must not be empty".into());
    }
    validate_document_pattern(&args.document)?;
    validate_client_id(&args.client)?;
    let exp = match args.exp {
        Some(exp) => exp,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|e| format!("system clock before 1970: {e}"))?
                .as_secs();
            now.saturating_add(args.ttl)
        }
    };
    let claims = Claims {
        document_id: args.document.clone(),
        client_id: args.client.clone(),
        rights: match args.rights {
            RightsArg::Read => Rights::Read,
            RightsArg::Write => Rights::Write,
        },
        exp,
    };
    Ok(Authority::new(&args.secret).issue(&claims))
}
