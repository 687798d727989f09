//! `api-entreprise download`: a document link, never with the token.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::{HostArgs, connect};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The link (`document_url`, or a file link).
    url: String,
    /// Where to write it [default: the link's last path segment].
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let (runtime, _sandbox) = connect(settings, true).await?;
    let output = match args.output {
        Some(path) => path,
        None => PathBuf::from(
            args.url
                .split('?')
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|n| !n.is_empty())
                .unwrap_or("document"),
        ),
    };
    let done = runtime.download(&args.url, &output).await?;
    println!("{}: {} bytes", done.path.display(), done.bytes);
    Ok(ExitCode::SUCCESS)
}
