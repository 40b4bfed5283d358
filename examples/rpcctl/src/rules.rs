//! `rpcctl override|weight|route|rules`: write, remove and show the governance rules of a
//! service in the registry (see `rpc_core::registry::rules`), with `--dry-run` to see what a
//! change would do first.

use std::process::ExitCode;
use std::time::Duration;

use rpc_core::registry::rules::{self, Rules};
use rpc_core::registry::{Category, Registry};
use rpc_core::Url;

use crate::{connect, providers_of, Cli, Fallible};

/// What a rule command does.
pub(crate) struct Change {
    /// The rule.
    pub(crate) rule: Url,
    /// Remove it rather than write it.
    pub(crate) remove: bool,
    /// Only print what would change.
    pub(crate) dry_run: bool,
}

/// `KEY=VALUE` arguments as pairs; the error names a malformed one.
pub(crate) fn settings(args: &[String]) -> Fallible<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!(
                "{a:?} is not a KEY=VALUE setting\n  try: rpcctl override org.example.Greeter timeout=3000"
            )),
        })
        .collect()
}

async fn current(cli: &Cli, reg: &dyn Registry, interface: &str) -> Fallible<Rules> {
    rules::read(reg, interface, Duration::from_millis(cli.timeout))
        .await
        .map_err(|e| format!("cannot read the rules of {interface}: {e}"))
}

/// One line describing a rule.
fn show(rule: &Url) -> String {
    match Category::of(rule) {
        Category::Routers => format!(
            "route {:?}  force={} priority={}  ({rule})",
            rule.param("rule").unwrap_or(""),
            rule.param("force").unwrap_or("false"),
            rule.param("priority").unwrap_or("0"),
        ),
        _ => {
            let target = match rule.port() {
                Some(p) if p != 0 => format!("provider {}", rule.address()),
                _ if rule.host() == "0.0.0.0" => "every consumer".to_string(),
                _ => format!("consumer {}", rule.host()),
            };
            let keys: Vec<String> = rule
                .params()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "category" | "dynamic"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("override for {target}: {}  ({rule})", keys.join(" "))
        }
    }
}

/// Prints the rules in force for `interface` (also part of `describe`).
pub(crate) async fn print_rules(cli: &Cli, reg: &dyn Registry, interface: &str) -> Fallible<()> {
    let rules = current(cli, reg, interface).await?;
    if rules.overrides.is_empty() && rules.routes.is_empty() {
        say!("rules in force: none");
        return Ok(());
    }
    say!("rules in force:");
    for r in rules.overrides.iter().chain(&rules.routes) {
        say!("  {}", show(r));
    }
    if let Err(e) = rules.checked_overrides() {
        say!("  warning: consumers refuse these override rules, the last good ones stay: {e}");
    }
    Ok(())
}

/// `rpcctl rules INTERFACE`.
pub(crate) async fn list(cli: &Cli, interface: &str) -> Fallible<ExitCode> {
    let reg = connect(cli).await?;
    print_rules(cli, &*reg, interface).await?;
    Ok(ExitCode::SUCCESS)
}

/// Writes or removes one rule of `interface`; with `--dry-run` prints what would change.
pub(crate) async fn apply(cli: &Cli, interface: &str, change: Change) -> Fallible<ExitCode> {
    let reg = connect(cli).await?;
    let before = current(cli, &*reg, interface).await?;
    let in_force = before
        .overrides
        .iter()
        .chain(&before.routes)
        .any(|r| *r == change.rule);
    if change.remove && !in_force {
        let mut known = String::new();
        for r in before.overrides.iter().chain(&before.routes) {
            known.push_str(&format!("\n  {}", show(r)));
        }
        return Err(format!(
            "no such rule is in force for {interface}: {}\n  rules in force:{}",
            change.rule,
            if known.is_empty() {
                " none".into()
            } else {
                known
            }
        ));
    }
    let verb = if change.remove { "remove" } else { "write" };
    if change.dry_run {
        say!("would {verb}: {}", show(&change.rule));
        let providers = providers_of(&*reg, interface).await?;
        match rules::preview(
            &before,
            &change.rule,
            change.remove,
            &providers,
            "127.0.0.1",
        )
        .map_err(|e| e.to_string())?
        {
            Some(lines) if lines.is_empty() => {
                say!(
                    "no provider's settings would change ({} providers)",
                    providers.len()
                )
            }
            Some(lines) => {
                say!("settings that would change, per provider:");
                for l in lines {
                    say!("  {l}");
                }
            }
            None => say!(
                "routing rules in force afterwards: {}",
                before.routes.len() + usize::from(!change.remove && !in_force)
                    - usize::from(change.remove)
            ),
        }
        say!("(dry run: nothing written)");
        return Ok(ExitCode::SUCCESS);
    }
    let result = if change.remove {
        reg.unregister(&change.rule).await
    } else {
        reg.register(&change.rule).await
    };
    result.map_err(|e| format!("cannot {verb} the rule: {e}"))?;
    // A registry that was not reachable may have only queued the change: confirm it.
    let after = current(cli, &*reg, interface).await?;
    let listed = after
        .overrides
        .iter()
        .chain(&after.routes)
        .any(|r| *r == change.rule);
    if listed == change.remove {
        return Err(format!(
            "the registry did not confirm the change within {} ms; run `rpcctl rules {interface}` to check",
            cli.timeout
        ));
    }
    say!(
        "{}: {}",
        if change.remove { "removed" } else { "written" },
        show(&change.rule)
    );
    Ok(ExitCode::SUCCESS)
}
