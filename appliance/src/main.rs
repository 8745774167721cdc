use std::process::ExitCode;

use clap::Parser;
use mogothrow77::cli::{
    AuditCommand, BackupCommand, Cli, Command, KeyFileCommand, MonitoringCommand,
};
use mogothrow77::config::Settings;
use mogothrow77::exit::Exit;
use mogothrow77::{commands, logging, serve, support};

/// mimalloc instead of glibc's malloc: the server allocates and frees many
/// small buffers per request across its worker threads (ADR 0014).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Config
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    if let Command::Version = cli.command {
        return commands::version().into();
    }
    if let Command::KeyFile {
        command: KeyFileCommand::New { path },
    } = &cli.command
    {
        return mogothrow77::commands::keys::new_key_file(path).into();
    }
    // A client of an appliance anywhere: no configuration of this host.
    if let Command::Smoke {
        url,
        token_file,
        ca_file,
        pin_cert,
        timeout,
    } = cli.command
    {
        return run_smoke(mogothrow77::smoke::Options {
            url,
            token_file,
            ca_file,
            pin_cert,
            timeout: std::time::Duration::from_secs(timeout.max(1)),
        });
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mogothrow77: {e}");
            return Exit::Config.into();
        }
    };
    let log_output = match cli.command {
        Command::Serve => logging::Output::Stdout,
        _ => logging::Output::Stderr,
    };
    logging::init(&settings.config.log, log_output);
    // Every command's statements are timed against the configured limit.
    mogothrow77::db::sql::set_slow_statement_threshold(std::time::Duration::from_millis(
        settings.config.database.slow_statement_ms,
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mogothrow77: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(settings).await,
            Command::Migrate {
                rehearse: true,
                json,
                ..
            } => commands::rehearse(settings, json).await,
            Command::Migrate { check, .. } => commands::migrate(settings, check).await,
            Command::Check => commands::check(settings).await,
            Command::Diagnose { json } => mogothrow77::diagnose::run(settings, json).await,
            Command::SupportBundle {
                collect: true,
                since,
                log_name,
                include_emails,
                ..
            } => match support::parse_since(&since) {
                Ok(since) => support::collect(settings, since, &log_name, include_emails).await,
                Err(e) => {
                    eprintln!("mogothrow77 support-bundle: {e}");
                    Exit::Config
                }
            },
            Command::SupportBundle {
                output,
                since,
                preview,
                log_file,
                include_emails,
                ..
            } => support::run(
                &settings,
                &support::Options {
                    output,
                    since,
                    preview,
                    log_file,
                    include_emails,
                },
            ),
            Command::Version => commands::version(),
            // Handled before the configuration is read.
            Command::Smoke { .. } => Exit::Failure,
            Command::Backup {
                drill: Some(BackupCommand::Drill { identity }),
                ..
            } => commands::backup_drill(settings, identity).await,
            Command::Backup {
                drill: None,
                out: Some(out),
                test_restore,
            } => commands::backup(settings, out, test_restore).await,
            // clap requires --out without a subcommand.
            Command::Backup {
                drill: None,
                out: None,
                ..
            } => Exit::Config,
            Command::Restore {
                from: Some(from),
                identity,
                ..
            } => commands::restore(settings, from, identity).await,
            Command::Restore {
                to_time: Some(to_time),
                ..
            } => commands::restore_to_time(settings, &to_time).await,
            Command::Restore { .. } => Exit::Config,
            Command::Admin { command } => mogothrow77::admin::run(settings, command).await,
            Command::Demo { command } => mogothrow77::demo::run(settings, command).await,
            Command::Audit {
                command: AuditCommand::Verify { database },
            } => commands::audit_verify(settings, database).await,
            Command::Monitoring {
                command: MonitoringCommand::Rules { runbook_base },
            } => commands::monitoring_rules(&settings, runbook_base.as_deref()),
            // Read no configuration: answered above.
            Command::KeyFile { .. } => Exit::Failure,
        }
    });
    // Do not wait for detached tasks (log forwarders, idle connections).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    exit.into()
}

fn run_smoke(options: mogothrow77::smoke::Options) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(mogothrow77::smoke::run(&options)).into(),
        Err(e) => {
            eprintln!("mogothrow77 smoke: cannot start the async runtime: {e}");
            Exit::Failure.into()
        }
    }
}
