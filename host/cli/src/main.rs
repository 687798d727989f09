//! `api-entreprise`: call API Entreprise through the sandboxed client
//! component, list its endpoints, download a document, check a set-up, run
//! the offline sandbox, serve the API to other applications (the gateway),
//! or ship a new client version. Each command lives in `commands/`; the
//! settings every command shares are resolved once, in `settings.rs`; the
//! installed client versions are kept as `components.rs` says.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod components;
mod settings;
mod summary;

/// Call API Entreprise (entreprise.api.gouv.fr) through a sandboxed
/// WebAssembly client. With no token, calls go to a built-in offline sandbox.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    settings: settings::HostArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the endpoints the client component supports.
    Endpoints(commands::endpoints::Args),
    /// Call one endpoint.
    Call(commands::call::Args),
    /// Download a document link from an answer (never with the token).
    Download(commands::download::Args),
    /// The first end-to-end test: the token's expiry, its privileges, the
    /// providers' health and one test call, as a checklist.
    Doctor(commands::doctor::Args),
    /// How full each per-IP quota and each of the token's groups is, as the
    /// state directory (or Redis) holds them, and when the token expires:
    /// "am I close to a ban?". Sends nothing.
    Status(commands::status::Args),
    /// Run the simulated API Entreprise on loopback until stopped.
    Sandbox(commands::sandbox::Args),
    /// The gateway: API Entreprise's own routes over HTTP for applications
    /// in any language or a browser, with the tokens held here.
    Serve(commands::serve::Args),
    /// Ship a new client version: check it, install it, roll it back.
    Component(commands::component::Args),
    /// Call for every row of a CSV file or of JSON lines, at the quota's
    /// pace, one JSON line per row; resumes where it stopped.
    Batch(Box<commands::batch::Args>),
    /// What a procedure needs about one company or association under an
    /// official use case: every endpoint it recommends, called at the
    /// quotas' pace, documents downloaded and checked at once, kept in a
    /// folder with a manifest. Run again, it asks only what is missing,
    /// failed or expiring. Exits 2 when the dossier is incomplete.
    Dossier(Box<commands::dossier::Args>),
    /// What to prepare for the access request (DataPass) of a use case, as
    /// a Markdown checklist to paste: the organisation, the legal frame,
    /// the data to tick with their scopes, the contacts; with a token,
    /// what it already opens.
    Habilitation(commands::habilitation::Args),
}

/// The command line's definition, each subcommand's `--help` listing only
/// the global options it uses (the others still parse, and do nothing).
fn definition() -> clap::Command {
    let command = Cli::command();
    let globals: Vec<clap::Arg> = command.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    names.into_iter().fold(command, |command, name| {
        let ignored = settings::ignored_by(&name);
        command.mut_subcommand(&name, |sub| {
            // A subcommand's own hidden copy of a global option takes its
            // place (clap propagates a global only where none is defined).
            let own: Vec<String> = sub.get_arguments().map(|a| a.get_id().to_string()).collect();
            globals
                .iter()
                .filter(|a| a.get_help_heading().is_some_and(|h| ignored.contains(&h)))
                .filter(|a| !own.iter().any(|id| id == a.get_id().as_str()))
                .fold(sub, |sub, a| sub.arg(a.clone().hide(true)))
        })
    })
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&definition().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Colour only for a person at a terminal, and never under NO_COLOR
    // (no-color.org). The log is written by a thread of its own: a reader
    // of stderr that stalls drops log lines, never holds a call.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (writer, _flush_at_exit) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("API_ENTREPRISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(colour)
        .with_writer(writer)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = &cli.settings;
    match cli.command {
        Command::Endpoints(args) => commands::endpoints::exec(settings, args).await,
        Command::Call(args) => commands::call::exec(settings, args).await,
        Command::Download(args) => commands::download::exec(settings, args).await,
        Command::Doctor(args) => commands::doctor::exec(settings, args).await,
        Command::Status(args) => commands::status::exec(settings, args).await,
        Command::Sandbox(args) => commands::sandbox::exec(args).await,
        Command::Serve(args) => commands::serve::exec(settings, args).await,
        Command::Component(args) => commands::component::exec(settings, args).await,
        Command::Batch(args) => commands::batch::exec(settings, *args).await,
        Command::Dossier(args) => commands::dossier::exec(settings, *args).await,
        Command::Habilitation(args) => commands::habilitation::exec(settings, args).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_holds_and_help_lists_what_applies() {
        let mut command = super::definition();
        command.clone().debug_assert();
        command.build();
        let help = |name: &str, command: &mut clap::Command| {
            command
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string()
        };
        let sandbox = help("sandbox", &mut command);
        assert!(!sandbox.contains("--profile") && !sandbox.contains("--ip-quota") && !sandbox.contains("--retries"));
        assert!(sandbox.contains("--link-lifetime"));
        let dossier = help("dossier", &mut command);
        assert!(dossier.contains("Connection:") && dossier.contains("--ip-quota") && dossier.contains("--use-case"));
        let endpoints = help("endpoints", &mut command);
        assert!(endpoints.contains("--component") && !endpoints.contains("--audit"));
    }
}
