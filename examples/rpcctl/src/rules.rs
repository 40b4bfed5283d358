//! `rpcctl override|weight|route|rules|config`: write, remove and show the governance rules
//! of a service in the registry (see `rpc_core::registry::rules`) and the rule documents of
//! its config center (`rpc_core::registry::config_center`), with `--dry-run` to see what a
//! change would do first.

use std::process::ExitCode;
use std::time::Duration;

use rpc_core::config::keys;
use rpc_core::registry::config_center::{self, ConfigKey};
use rpc_core::registry::rules::{self, Rules};
use rpc_core::registry::{Category, Registry};
use rpc_core::Url;

use crate::{connect, providers_of, Cli, ConfigAction, Fallible};

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
    current_within(reg, interface, cli.timeout).await
}

/// The rules of `interface` in the registry, read within `timeout_ms`.
pub(crate) async fn current_within(
    reg: &dyn Registry,
    interface: &str,
    timeout_ms: u64,
) -> Fallible<Rules> {
    rules::read(reg, interface, Duration::from_millis(timeout_ms))
        .await
        .map_err(|e| format!("cannot read the rules of {interface}: {e}"))
}

/// One line describing a rule.
pub(crate) fn show(rule: &Url) -> String {
    match Category::of(rule) {
        Category::Routers => format!(
            "route {:?}  force={} priority={}  ({rule})",
            rule.param(keys::RULE).unwrap_or(""),
            rule.param(keys::FORCE).unwrap_or("false"),
            rule.param(keys::PRIORITY).unwrap_or("0"),
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
                .filter(|(k, _)| !matches!(k.as_str(), keys::CATEGORY | keys::DYNAMIC))
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
        return print_documents(reg, interface).await;
    }
    say!("rules in force:");
    for r in rules.all() {
        say!("  {}", show(r));
    }
    if let Err(e) = rules.checked_overrides() {
        say!("  warning: consumers refuse these override rules, the last good ones stay: {e}");
    }
    print_documents(reg, interface).await
}

/// The config-center documents that can hold rules for `interface`: per version and group
/// of its providers, and per provider application.
pub(crate) fn document_keys(
    reg: &dyn Registry,
    interface: &str,
    providers: &[Url],
) -> Vec<ConfigKey> {
    let mut names = vec![
        format!("{interface}::.configurators"),
        format!("{interface}::.condition-router"),
    ];
    for p in providers {
        let service = config_center::service_rule_key(p);
        names.push(format!("{service}.configurators"));
        names.push(format!("{service}.condition-router"));
        if let Some(app) = p.param(keys::APPLICATION).filter(|a| !a.is_empty()) {
            names.push(format!("{app}.configurators"));
            names.push(format!("{app}.tag-router"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .filter_map(|n| ConfigKey::rule(reg.url(), &n).ok())
        .collect()
}

/// Prints the config-center documents in force for `interface` and their rules.
async fn print_documents(reg: &dyn Registry, interface: &str) -> Fallible<()> {
    let providers = providers_of(reg, interface).await.unwrap_or_default();
    let mut any = false;
    for key in document_keys(reg, interface, &providers) {
        let text = match reg.get_config(&key).await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            // A registry without a config center has no documents to show.
            Err(e) if e.kind() == rpc_core::ErrorKind::Config => return Ok(()),
            Err(e) => return Err(format!("cannot read {key}: {e}")),
        };
        if !any {
            say!("config-center documents:");
            any = true;
        }
        match config_center::to_rule_urls(key.key(), &text) {
            Ok(urls) => {
                say!("  {key}: {} rules", urls.len());
                for u in urls {
                    say!("    {}", show(&u));
                }
            }
            Err(e) => say!("  {key}: refused by consumers, the last good version stays: {e}"),
        }
    }
    Ok(())
}

/// `rpcctl config get|put|rm`.
pub(crate) async fn config(cli: &Cli, action: &ConfigAction) -> Fallible<ExitCode> {
    let reg = connect(cli).await?;
    let key_of = |k: &str| ConfigKey::rule(reg.url(), k).map_err(|e| e.to_string());
    match action {
        ConfigAction::Get { key } => {
            let key = key_of(key)?;
            match reg.get_config(&key).await.map_err(|e| e.to_string())? {
                None => return Err(format!("no document {key}")),
                Some(text) => {
                    say!("{}", text.trim_end());
                    match config_center::to_rule_urls(key.key(), &text) {
                        Ok(urls) => {
                            say!("# {} rules:", urls.len());
                            for u in urls {
                                say!("#   {}", show(&u));
                            }
                        }
                        Err(e) => say!("# refused by consumers: {e}"),
                    }
                }
            }
        }
        ConfigAction::Put { key, file, dry_run } => {
            let key = key_of(key)?;
            let text = if file == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(
                        std::io::stdin(),
                        config_center::MAX_CONFIG_BYTES as u64 + 1,
                    ),
                    &mut t,
                )
                .map_err(|e| format!("cannot read standard input: {e}"))?;
                t
            } else {
                std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?
            };
            let urls = config_center::to_rule_urls(key.key(), &text).map_err(|e| e.to_string())?;
            say!("{key}: {} rules", urls.len());
            for u in &urls {
                say!("  {}", show(u));
            }
            if *dry_run {
                say!("(dry run: nothing written)");
                return Ok(ExitCode::SUCCESS);
            }
            reg.publish_config(&key, Some(&text))
                .await
                .map_err(|e| format!("cannot write {key}: {e}"))?;
            say!("written: {key}");
        }
        ConfigAction::Rm { key } => {
            let key = key_of(key)?;
            if reg
                .get_config(&key)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("no document {key}"));
            }
            reg.publish_config(&key, None)
                .await
                .map_err(|e| format!("cannot remove {key}: {e}"))?;
            say!("removed: {key}");
        }
    }
    Ok(ExitCode::SUCCESS)
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
    let in_force = before.contains(&change.rule);
    if change.remove && !in_force {
        let mut known = String::new();
        for r in before.all() {
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
    let done = write(&*reg, interface, &change, cli.timeout).await?;
    say!("{done}");
    Ok(ExitCode::SUCCESS)
}

/// How often [`write()`] reads the rules again while the registry does not show its change.
const CONFIRM_EVERY: Duration = Duration::from_millis(50);

/// Writes or removes `change.rule` (its `dry_run` is not looked at) and waits until the
/// registry lists the change; returns the line saying what was done.
pub(crate) async fn write(
    reg: &dyn Registry,
    interface: &str,
    change: &Change,
    timeout_ms: u64,
) -> Fallible<String> {
    let verb = if change.remove { "remove" } else { "write" };
    let result = if change.remove {
        reg.unregister(&change.rule).await
    } else {
        reg.register(&change.rule).await
    };
    result.map_err(|e| format!("cannot {verb} the rule: {e}"))?;
    // A registry that was not reachable may have only queued the change, and one whose lists
    // lag its writes shows it a little later: read the rules again until they show it.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The last reads still get a moment to list, so a slow listing is not a failed one.
        let wait = u64::try_from(left.max(CONFIRM_EVERY).as_millis()).unwrap_or(u64::MAX);
        let after = current_within(reg, interface, wait).await?;
        if after.contains(&change.rule) != change.remove {
            break;
        }
        if left.is_zero() {
            return Err(format!(
                "the registry did not confirm the change within {timeout_ms} ms; run `rpcctl rules {interface}` to check"
            ));
        }
        tokio::time::sleep(left.min(CONFIRM_EVERY)).await;
    }
    Ok(format!(
        "{}: {}",
        if change.remove { "removed" } else { "written" },
        show(&change.rule)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_core::registry::NotifyListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// A registry whose lists show a written rule only from its `shows_after`th listing on
    /// (never, with `usize::MAX`): one whose reads lag its writes.
    struct Lagging {
        url: Url,
        rules: Mutex<Vec<Url>>,
        listings: AtomicUsize,
        shows_after: usize,
    }

    impl Lagging {
        fn new(shows_after: usize) -> Lagging {
            Lagging {
                url: Url::parse("lagging://127.0.0.1:1").expect("url"),
                rules: Mutex::new(Vec::new()),
                listings: AtomicUsize::new(0),
                shows_after,
            }
        }
    }

    #[async_trait::async_trait]
    impl Registry for Lagging {
        fn url(&self) -> &Url {
            &self.url
        }
        fn is_available(&self) -> bool {
            true
        }
        async fn register(&self, url: &Url) -> rpc_core::Result<()> {
            self.rules.lock().expect("lock").push(url.clone());
            Ok(())
        }
        async fn unregister(&self, url: &Url) -> rpc_core::Result<()> {
            self.rules.lock().expect("lock").retain(|u| u != url);
            Ok(())
        }
        async fn subscribe(
            &self,
            _: &Url,
            listener: Arc<dyn NotifyListener>,
        ) -> rpc_core::Result<()> {
            let n = self.listings.fetch_add(1, Ordering::SeqCst) + 1;
            let shown = if n >= self.shows_after {
                self.rules.lock().expect("lock").clone()
            } else {
                Vec::new()
            };
            listener.notify(Category::Configurators, shown);
            listener.notify(Category::Routers, Vec::new());
            Ok(())
        }
        async fn unsubscribe(&self, _: &Url, _: &Arc<dyn NotifyListener>) -> rpc_core::Result<()> {
            Ok(())
        }
        async fn lookup(&self, _: &Url) -> rpc_core::Result<Vec<Url>> {
            Ok(Vec::new())
        }
    }

    fn weight_zero() -> Change {
        Change {
            rule: Url::parse(
                "override://10.0.0.1:20880/org.Foo?category=configurators&dynamic=false&weight=0",
            )
            .expect("rule"),
            remove: false,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn a_write_the_registry_lists_late_is_confirmed_once_listed() {
        let reg = Lagging::new(3);
        let done = write(&reg, "org.Foo", &weight_zero(), 2000)
            .await
            .expect("confirmed on the third listing");
        assert!(
            done.starts_with("written: override for provider 10.0.0.1:20880"),
            "{done}"
        );
        assert_eq!(reg.listings.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_write_the_registry_never_lists_fails_after_the_timeout() {
        let reg = Lagging::new(usize::MAX);
        let started = tokio::time::Instant::now();
        let e = write(&reg, "org.Foo", &weight_zero(), 200)
            .await
            .expect_err("never listed");
        assert!(
            e.contains("did not confirm the change within 200 ms"),
            "{e}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            reg.listings.load(Ordering::SeqCst) > 1,
            "read again before giving up"
        );
    }
}
