//! `api-entreprise call`: one call, as a readable summary or the envelope.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use api_entreprise::{CallError, types};

use crate::settings::{HostArgs, connect};
use crate::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint id, such as insee_unites_legales (see `endpoints`).
    endpoint: String,
    /// The path values, in the endpoint's order (a SIREN, a SIRET…).
    values: Vec<String>,
    /// The administrative frame of the request, such as "aides publiques"
    /// (every data endpoint needs the three trace fields).
    #[arg(long, default_value = "")]
    context: String,
    /// The SIRET of the public body that will use the data.
    #[arg(long, default_value = "")]
    recipient: String,
    /// The reason for the request or the case number (advised under 50 characters).
    #[arg(long, default_value = "")]
    object: String,
    /// Who is asking; required by the DGFIP endpoints.
    #[arg(long)]
    user_id: Option<String>,
    /// The endpoint version [default: the newest non-deprecated one].
    #[arg(long)]
    version: Option<u8>,
    /// An optional query parameter, as NAME=VALUE (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    query: Vec<String>,
    /// Print the whole answer as JSON.
    #[arg(long)]
    json: bool,
    /// Also download the answer's document to this file.
    #[arg(long, value_name = "PATH")]
    download: Option<PathBuf>,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let query = args
        .query
        .iter()
        .map(|q| {
            q.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--query {q:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // A profile's trace fields fill what the flags leave out.
    let mut args = args;
    if let Some((_, _, profile)) = settings.profile()? {
        for (given, default) in [
            (&mut args.context, profile.context),
            (&mut args.recipient, profile.recipient),
            (&mut args.object, profile.object),
        ] {
            if given.is_empty() {
                *given = default.unwrap_or_default();
            }
        }
    }
    if args.object.chars().count() > 50 {
        eprintln!("warning: --object is over the 50 characters API Entreprise advises; it is sent whole");
    }
    let (runtime, _sandbox) = connect(settings, false).await?;
    let request = types::Request {
        endpoint: args.endpoint,
        version: args.version,
        params: args.values,
        query,
        trace: types::Trace {
            context: args.context,
            recipient: args.recipient,
            object: args.object,
            user_id: args.user_id,
        },
    };
    let started = std::time::Instant::now();
    match runtime.call(&request).await {
        Ok(response) => {
            let mut out = std::io::stdout().lock();
            if args.json {
                summary::write_json(&mut out, &response)?;
            } else {
                let endpoint = runtime.resolve(&request.endpoint, request.version);
                summary::write_summary(&mut out, endpoint.as_ref(), &response, started.elapsed())?;
            }
            if let Some(path) = &args.download {
                let Some(url) = response.document.as_ref().and_then(|d| d.url.as_deref()) else {
                    bail!("--download: this answer carries no document link");
                };
                let done = runtime.download(url, path).await?;
                eprintln!("document saved to {} ({} bytes)", done.path.display(), done.bytes);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let CallError::Client(client) = &e
                && matches!(client.0, types::Error::UnknownEndpoint(_))
                && std::io::stderr().is_terminal()
            {
                eprintln!("hint: `api-entreprise endpoints` lists the endpoint ids");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
