//! Configuration: a builder API, a TOML file and environment variables, all producing URLs.
//!
//! # Scopes
//! For one key the most specific scope wins: **method > service > application > built-in
//! defaults**. A method-level setting becomes the URL parameter `{method}.{key}`, which the
//! layers read before `{key}` ([`Url::method_param`]). Method defaults declared in code (for
//! example a `#[timeout]` on a service method) count as method scope, below a method-level
//! setting from configuration.
//!
//! # Sources
//! For the same scope and key: **environment > builder (code) > TOML file**. Operators can
//! override what the code says without a rebuild, and code can override a shipped file.
//!
//! # TOML
//! ```toml
//! [application]
//! name = "greeter-app"
//! registry = "zookeeper://127.0.0.1:2181"
//! timeout = 1000                      # any key of the key table, for every service
//!
//! [protocol]
//! name = "dubbo"
//! host = "127.0.0.1"
//! port = 20880
//!
//! [services."org.example.Greeter"]    # what this process provides
//! version = "1.0.0"
//! weight = 200
//!
//! [references."org.example.Greeter"]  # what this process calls
//! version = "1.0.0"
//! loadbalance = "leastactive"
//! [references."org.example.Greeter".methods.greet]
//! timeout = 300
//! ```
//! Every key is checked against the [key table](keys): an unknown key is an error that names
//! it, where it stood, and the closest known key; a value of the wrong kind is an error too.
//!
//! # Environment
//! `RPC_CONFIG` (path of a TOML file), `RPC_APPLICATION`, `RPC_REGISTRY`, `RPC_PROTOCOL`,
//! `RPC_HOST`, `RPC_PORT`, and `RPC_PARAM_<KEY>` for an application-level key, with the key in
//! upper case and dots as underscores (`RPC_PARAM_CONNECT_TIMEOUT=500`). An unknown
//! `RPC_PARAM_*` variable is an error.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Result, RpcError};
use crate::url::Url;

pub mod keys;

pub use keys::{all_keys, find_key, ConfigKey, KeyKind};

/// Keys with a meaning of their own in `[application]`, besides the key table.
const APPLICATION_FIELDS: &[&str] = &["name", keys::REGISTRY];
/// Keys with a meaning of their own in `[protocol]`.
const PROTOCOL_FIELDS: &[&str] = &["name", "host", "port"];
/// Keys with a meaning of their own in a reference.
const REFERENCE_FIELDS: &[&str] = &[keys::URL];

/// Parameters of one service or reference, with per-method tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Service-level parameters (`version`, `timeout`, ...).
    pub params: BTreeMap<String, String>,
    /// Method name → method-level parameters.
    pub methods: BTreeMap<String, BTreeMap<String, String>>,
}

impl ServiceConfig {
    fn overlay(&mut self, top: &ServiceConfig) {
        self.params
            .extend(top.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (m, params) in &top.methods {
            self.methods
                .entry(m.clone())
                .or_default()
                .extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    /// Sets a service-level parameter.
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets a method-level parameter.
    pub fn method_param(mut self, method: &str, key: &str, value: impl ToString) -> Self {
        self.methods
            .entry(method.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        self
    }
}

/// One layer of configuration (a file, the code, or the environment), or their merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Application name.
    pub application: Option<String>,
    /// Registry URL.
    pub registry: Option<Url>,
    /// Protocol name for exports.
    pub protocol: Option<String>,
    /// Host to bind and to announce.
    pub host: Option<String>,
    /// Port to bind (0 = any free port).
    pub port: Option<u16>,
    /// Application-level parameters.
    pub params: BTreeMap<String, String>,
    /// Provided services by interface name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Referenced services by interface name.
    pub references: BTreeMap<String, ServiceConfig>,
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RpcError::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::from_toml_str(&text)
            .map_err(|e| RpcError::config(format!("{}: {}", path.display(), e.message())))
    }

    /// Parses and checks TOML text (see the [module docs](self) for the layout).
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| RpcError::config(format!("invalid TOML: {e}")))?;
        let mut cfg = Config::default();
        for (section, value) in &table {
            let t = as_table(value, section)?;
            match section.as_str() {
                "application" => {
                    for (k, v) in t {
                        let text = scalar(v, &format!("[application] {k}"))?;
                        match k.as_str() {
                            "name" => cfg.application = Some(text),
                            keys::REGISTRY => {
                                cfg.registry = Some(registry_url(&text, "[application] registry")?)
                            }
                            _ => {
                                check_param(k, &text, "[application]", APPLICATION_FIELDS, false)?;
                                cfg.params.insert(k.clone(), text);
                            }
                        }
                    }
                }
                "protocol" => {
                    for (k, v) in t {
                        let text = scalar(v, &format!("[protocol] {k}"))?;
                        match k.as_str() {
                            "name" => cfg.protocol = Some(text),
                            "host" => cfg.host = Some(text),
                            "port" => cfg.port = Some(parse_port(&text, "[protocol] port")?),
                            _ => {
                                check_param(k, &text, "[protocol]", PROTOCOL_FIELDS, false)?;
                                cfg.params.insert(k.clone(), text);
                            }
                        }
                    }
                }
                "services" | "references" => {
                    for (iface, body) in t {
                        let where_ = format!("[{section}.\"{iface}\"]");
                        let sc = parse_service(as_table(body, &where_)?, &where_, section == "references")?;
                        let map = if section == "services" {
                            &mut cfg.services
                        } else {
                            &mut cfg.references
                        };
                        map.insert(iface.clone(), sc);
                    }
                }
                other => {
                    return Err(RpcError::config(format!(
                        "unknown section [{other}]; known: [application], [protocol], [services.\"<interface>\"], [references.\"<interface>\"]"
                    )))
                }
            }
        }
        Ok(cfg)
    }

    /// Reads the `RPC_*` variables from `vars` (pass `std::env::vars()` in applications).
    pub fn from_env_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config> {
        let mut cfg = Config::default();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("RPC_") else {
                continue;
            };
            match rest {
                "CONFIG" => {}
                "APPLICATION" => cfg.application = Some(value),
                "REGISTRY" => cfg.registry = Some(registry_url(&value, "RPC_REGISTRY")?),
                "PROTOCOL" => cfg.protocol = Some(value),
                "HOST" => cfg.host = Some(value),
                "PORT" => cfg.port = Some(parse_port(&value, "RPC_PORT")?),
                _ => {
                    let Some(key_name) = rest.strip_prefix("PARAM_") else {
                        // Other RPC_ variables belong to tests and tools (RPC_TEST_*, ...).
                        continue;
                    };
                    let key = all_keys()
                        .into_iter()
                        .find(|k| env_form(k.name) == key_name)
                        .ok_or_else(|| {
                            let guess =
                                keys::closest_key(&key_name.to_lowercase().replace('_', "."))
                                    .map(|k| format!(" (did you mean RPC_PARAM_{}?)", env_form(k)))
                                    .unwrap_or_default();
                            RpcError::config(format!(
                                "unknown configuration variable {name}: no key '{}'{guess}",
                                key_name.to_lowercase().replace('_', ".")
                            ))
                        })?;
                    check_value(key, &value, &name)?;
                    cfg.params.insert(key.name.to_string(), value);
                }
            }
        }
        Ok(cfg)
    }

    /// Lays `top` over `self`: every value `top` sets wins.
    pub fn overlay(&mut self, top: &Config) {
        if top.application.is_some() {
            self.application.clone_from(&top.application);
        }
        if top.registry.is_some() {
            self.registry.clone_from(&top.registry);
        }
        if top.protocol.is_some() {
            self.protocol.clone_from(&top.protocol);
        }
        if top.host.is_some() {
            self.host.clone_from(&top.host);
        }
        if top.port.is_some() {
            self.port = top.port;
        }
        self.params
            .extend(top.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, sc) in &top.services {
            self.services.entry(name.clone()).or_default().overlay(sc);
        }
        for (name, sc) in &top.references {
            self.references.entry(name.clone()).or_default().overlay(sc);
        }
    }

    /// The URL a consumer uses for its reference to `interface`.
    ///
    /// `method_defaults` are method-level defaults declared in code (`greet.timeout=300`);
    /// configuration at every scope is laid on top in precedence order.
    pub fn reference_url(&self, interface: &str, method_defaults: &[(String, String)]) -> Url {
        let base = Url::new("consumer", self.host.as_deref().unwrap_or("127.0.0.1"), 0)
            .with_path(interface)
            .with_param(keys::SIDE, "consumer");
        self.scoped_url(base, self.references.get(interface), method_defaults)
    }

    /// The URL a provider exports `interface` at, on `port` (the bound port).
    pub fn service_url(
        &self,
        interface: &str,
        port: u16,
        method_defaults: &[(String, String)],
    ) -> Url {
        let base = Url::new(
            self.protocol.as_deref().unwrap_or("dubbo"),
            self.host.as_deref().unwrap_or("127.0.0.1"),
            port,
        )
        .with_path(interface)
        .with_param(keys::SIDE, "provider");
        self.scoped_url(base, self.services.get(interface), method_defaults)
    }

    fn scoped_url(
        &self,
        base: Url,
        service: Option<&ServiceConfig>,
        method_defaults: &[(String, String)],
    ) -> Url {
        let mut params: BTreeMap<String, String> = method_defaults.iter().cloned().collect();
        if let Some(app) = &self.application {
            params.insert(keys::APPLICATION.into(), app.clone());
        }
        params.extend(self.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(sc) = service {
            params.extend(sc.params.iter().map(|(k, v)| (k.clone(), v.clone())));
            for (m, mp) in &sc.methods {
                params.extend(mp.iter().map(|(k, v)| (format!("{m}.{k}"), v.clone())));
            }
        }
        base.with_params(params)
    }
}

/// Builds a [`Config`] from a file, code and the environment, merged in source precedence
/// (environment > code > file) whatever order the calls come in.
#[derive(Debug, Default)]
pub struct ConfigBuilder {
    file: Config,
    code: Config,
    env: Config,
}

impl ConfigBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a TOML file as the lowest layer.
    pub fn file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.file = Config::from_toml_file(path.as_ref())?;
        Ok(self)
    }

    /// Reads the process environment as the top layer, including the file named by
    /// `RPC_CONFIG` if set.
    pub fn env(self) -> Result<Self> {
        self.env_vars(std::env::vars())
    }

    /// Like [`ConfigBuilder::env`] with explicit variables (for tests and embedding).
    pub fn env_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        if let Some((_, path)) = vars.iter().find(|(k, _)| k == "RPC_CONFIG") {
            self.file = Config::from_toml_file(Path::new(path))?;
        }
        self.env = Config::from_env_vars(vars)?;
        Ok(self)
    }

    /// Sets the application name.
    pub fn application(mut self, name: &str) -> Self {
        self.code.application = Some(name.to_string());
        self
    }

    /// Sets the registry URL.
    /// Its parameters must be keys of the key table, with valid values.
    pub fn registry(mut self, url: &str) -> Result<Self> {
        self.code.registry = Some(registry_url(url, "the registry URL")?);
        Ok(self)
    }

    /// Sets the export protocol and port.
    pub fn protocol(mut self, name: &str, port: u16) -> Self {
        self.code.protocol = Some(name.to_string());
        self.code.port = Some(port);
        self
    }

    /// Sets the host to bind and announce.
    pub fn host(mut self, host: &str) -> Self {
        self.code.host = Some(host.to_string());
        self
    }

    /// Sets an application-level parameter; the key must be in the key table.
    pub fn param(mut self, key: &str, value: impl ToString) -> Result<Self> {
        let value = value.to_string();
        check_param(key, &value, "the application", &[], false)?;
        self.code.params.insert(key.to_string(), value);
        Ok(self)
    }

    /// Configures a provided service.
    pub fn service(mut self, interface: &str, service: ServiceConfig) -> Result<Self> {
        check_service(&service, &format!("service {interface}"), false)?;
        self.code
            .services
            .entry(interface.to_string())
            .or_default()
            .overlay(&service);
        Ok(self)
    }

    /// Configures a reference.
    pub fn reference(mut self, interface: &str, reference: ServiceConfig) -> Result<Self> {
        check_service(&reference, &format!("reference {interface}"), true)?;
        self.code
            .references
            .entry(interface.to_string())
            .or_default()
            .overlay(&reference);
        Ok(self)
    }

    /// The merged configuration.
    pub fn build(self) -> Config {
        let mut cfg = self.file;
        cfg.overlay(&self.code);
        cfg.overlay(&self.env);
        cfg
    }
}

fn env_form(key: &str) -> String {
    key.to_uppercase().replace(['.', '-'], "_")
}

fn as_table<'a>(v: &'a toml::Value, where_: &str) -> Result<&'a toml::Table> {
    v.as_table()
        .ok_or_else(|| RpcError::config(format!("{where_} must be a table")))
}

fn scalar(v: &toml::Value, where_: &str) -> Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        _ => Err(RpcError::config(format!(
            "{where_} must be a string, number or boolean"
        ))),
    }
}

fn parse_port(text: &str, where_: &str) -> Result<u16> {
    text.parse()
        .map_err(|_| RpcError::config(format!("{where_} '{text}' is not a port (0 to 65535)")))
}

fn check_value(key: &ConfigKey, value: &str, where_: &str) -> Result<()> {
    key.kind.check(value).map_err(|want| {
        RpcError::config(format!(
            "'{}' in {where_} must be {want}, not '{value}'",
            key.name
        ))
    })
}

fn check_param(key: &str, value: &str, where_: &str, fields: &[&str], method: bool) -> Result<()> {
    match find_key(key) {
        Some(k) if method && !k.per_method => Err(RpcError::config(format!(
            "'{key}' in {where_} cannot be set per method; set it on the service"
        ))),
        Some(k) => check_value(k, value, where_),
        None => {
            // The closest of the table's keys and the section's own fields: a field the
            // name nearly spells (`nmae`, `name`) beats a key it only resembles.
            let mut known: Vec<&str> = all_keys().into_iter().map(|k| k.name).collect();
            known.extend_from_slice(fields);
            let guess = crate::extension::suggest(&known, key)
                .map(|k| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            Err(RpcError::config(format!(
                "unknown key '{key}' in {where_}{guess}"
            )))
        }
    }
}

/// Parses the registry URL given in `where_` and checks each of its parameters against the
/// key table, as every other setting is checked: a misspelt `sesion=` is refused by name
/// instead of being silently ignored by the adapter.
fn registry_url(text: &str, where_: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| RpcError::config(format!("{where_}: {e}")))?;
    for (k, v) in url.params() {
        check_param(k, v, where_, &[], false)?;
    }
    Ok(url)
}

fn check_service(sc: &ServiceConfig, where_: &str, reference: bool) -> Result<()> {
    let fields: &[&str] = if reference { REFERENCE_FIELDS } else { &[] };
    for (k, v) in &sc.params {
        if !reference && REFERENCE_FIELDS.contains(&k.as_str()) {
            return Err(RpcError::config(format!(
                "'{k}' in {where_} is only meaningful for a reference"
            )));
        }
        if !fields.contains(&k.as_str()) {
            check_param(k, v, where_, fields, false)?;
        }
    }
    for (m, params) in &sc.methods {
        for (k, v) in params {
            check_param(k, v, &format!("{where_} method {m}"), &[], true)?;
        }
    }
    Ok(())
}

fn parse_service(t: &toml::Table, where_: &str, reference: bool) -> Result<ServiceConfig> {
    let mut sc = ServiceConfig::default();
    for (k, v) in t {
        if k == "methods" {
            for (m, body) in as_table(v, &format!("{where_} methods"))? {
                let mw = format!("{where_} methods.{m}");
                let mut params = BTreeMap::new();
                for (mk, mv) in as_table(body, &mw)? {
                    params.insert(mk.clone(), scalar(mv, &format!("{mw} {mk}"))?);
                }
                sc.methods.insert(m.clone(), params);
            }
        } else {
            sc.params
                .insert(k.clone(), scalar(v, &format!("{where_} {k}"))?);
        }
    }
    check_service(&sc, where_, reference)?;
    Ok(sc)
}

/// Checks every extension name a URL selects (protocol, transporter, serialization, cluster,
/// loadbalance, filter, idempotency store, each also per method), so a mistyped name fails
/// where it is given (a reference or export when it is built, an override rule when it
/// arrives), with a suggestion, not on every call.
pub(crate) fn check_extension_names(url: &Url) -> Result<()> {
    use crate::cluster::{Cluster, LoadBalance};
    use crate::extension;
    use crate::filter::Filter;
    use crate::protocol::Protocol;
    use crate::serialize::Serialization;
    use crate::transport::Transporter;
    let interface = url.path().to_string();
    extension::check_url::<dyn Protocol>(url, false)
        .and_then(|()| extension::check_url::<dyn Transporter>(url, false))
        .and_then(|()| extension::check_url::<dyn Serialization>(url, false))
        .and_then(|()| extension::check_url::<dyn Cluster>(url, false))
        .and_then(|()| extension::check_url::<dyn LoadBalance>(url, false))
        .and_then(|()| extension::check_url::<dyn Filter>(url, true))
        .and_then(|()| {
            extension::check_url::<dyn crate::idempotency::IdempotencyStoreFactory>(url, false)
        })
        .map_err(|e| e.with_service(interface))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const FILE: &str = r#"
[application]
name = "shop"
registry = "zookeeper://127.0.0.1:2181"
timeout = 1000
retries = 1

[protocol]
name = "dubbo"
port = 20880

[services."org.example.Greeter"]
version = "1.0.0"
weight = 200

[references."org.example.Greeter"]
version = "1.0.0"
timeout = 500
url = "dubbo://127.0.0.1:20880"

[references."org.example.Greeter".methods.greet]
timeout = 300
"#;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn toml_produces_urls_with_scope_precedence() {
        let cfg = Config::from_toml_str(FILE).expect("valid file");
        let url = cfg.reference_url("org.example.Greeter", &[]);
        // method > service > application
        assert_eq!(url.method_param("greet", keys::TIMEOUT), Some("300"));
        assert_eq!(url.method_param("other", keys::TIMEOUT), Some("500"));
        assert_eq!(url.method_param("other", keys::RETRIES), Some("1"));
        assert_eq!(url.param(keys::APPLICATION), Some("shop"));
        assert_eq!(url.param(keys::VERSION), Some("1.0.0"));
        assert_eq!(url.param(keys::URL), Some("dubbo://127.0.0.1:20880"));
        assert_eq!(url.service_key(), "org.example.Greeter:1.0.0");

        let svc = cfg.service_url("org.example.Greeter", 20880, &[]);
        assert_eq!(svc.protocol(), "dubbo");
        assert_eq!(svc.port(), Some(20880));
        assert_eq!(svc.param(keys::WEIGHT), Some("200"));
        assert_eq!(svc.param(keys::TIMEOUT), Some("1000"));
        assert_eq!(
            cfg.registry.as_ref().map(|u| u.to_string()).as_deref(),
            Some("zookeeper://127.0.0.1:2181")
        );
    }

    #[test]
    fn code_method_defaults_lose_to_configured_method_level_only() {
        let cfg = Config::from_toml_str(FILE).expect("valid file");
        let defaults = vec![
            ("greet.timeout".to_string(), "50".to_string()),
            ("hello.timeout".to_string(), "60".to_string()),
        ];
        let url = cfg.reference_url("org.example.Greeter", &defaults);
        assert_eq!(url.method_param("greet", keys::TIMEOUT), Some("300"));
        assert_eq!(url.method_param("hello", keys::TIMEOUT), Some("60"));
    }

    #[test]
    fn unknown_toml_key_is_named_with_a_suggestion() {
        let e = Config::from_toml_str("[references.\"a.B\"]\ntimeot = 5\n").expect_err("typo");
        let msg = e.to_string();
        assert!(
            msg.contains("unknown key 'timeot' in [references.\"a.B\"]"),
            "{msg}"
        );
        assert!(msg.contains("did you mean 'timeout'"), "{msg}");

        let e = Config::from_toml_str("[aplication]\nname = \"x\"\n").expect_err("section");
        assert!(
            e.to_string().contains("unknown section [aplication]"),
            "{e}"
        );

        // One-way is the service definition's to say, not configuration's.
        let e = Config::from_toml_str("[references.\"a.B\"]\n\"greet.oneway\" = true\n")
            .expect_err("not a setting");
        assert!(e.to_string().contains("unknown key"), "{e}");

        let e = Config::from_toml_str("[application]\nnmae = \"x\"\n").expect_err("field");
        assert!(e.to_string().contains("unknown key 'nmae'"), "{e}");
        assert!(e.to_string().contains("did you mean 'name'"), "{e}");
    }

    #[test]
    fn wrong_value_kinds_and_scopes_are_errors() {
        let e = Config::from_toml_str("[application]\ntimeout = \"soon\"\n").expect_err("kind");
        assert!(
            e.to_string().contains(
                "'timeout' in [application] must be a whole number of milliseconds, not 'soon'"
            ),
            "{e}"
        );
        let e = Config::from_toml_str("[protocol]\nport = 70000\n").expect_err("port");
        assert!(e.to_string().contains("'70000' is not a port"), "{e}");
        let e = Config::from_toml_str("[references.\"a.B\".methods.m]\nserialization = \"json\"\n")
            .expect_err("not per method");
        assert!(e.to_string().contains("cannot be set per method"), "{e}");
        let e = Config::from_toml_str("[application]\nregistry = \"nope\"\n").expect_err("url");
        assert!(e.to_string().contains("malformed URL 'nope'"), "{e}");
        let e = Config::from_toml_str("not toml [").expect_err("syntax");
        assert!(e.to_string().contains("invalid TOML"), "{e}");
    }

    #[test]
    fn registry_url_parameters_are_checked_wherever_the_url_comes_from() {
        // Known keys with valid values pass, from each source.
        let good = "zookeeper://127.0.0.1:2181?session=4000&timeout=2000&root=dubbo";
        let cfg = Config::from_toml_str(&format!("[application]\nregistry = \"{good}\"\n"))
            .expect("valid registry URL");
        assert_eq!(
            cfg.registry.as_ref().and_then(|u| u.param("session")),
            Some("4000")
        );
        ConfigBuilder::new().registry(good).expect("valid in code");
        Config::from_env_vars(vars(&[("RPC_REGISTRY", good)])).expect("valid in env");

        // A misspelt key is refused by name, with the key it nearly spells.
        let e =
            Config::from_toml_str("[application]\nregistry = \"zookeeper://h:2181?sesion=4000\"\n")
                .expect_err("misspelt");
        let text = e.to_string();
        assert!(
            text.contains("unknown key 'sesion' in [application] registry"),
            "{text}"
        );
        assert!(text.contains("did you mean 'session'"), "{text}");
        assert_eq!(e.kind(), ErrorKind::Config);
        // A bad value names the key, the source and the value.
        let e = ConfigBuilder::new()
            .registry("etcd://h:2379?timeout=soon")
            .expect_err("bad value");
        assert!(
            e.to_string().contains(
                "'timeout' in the registry URL must be a whole number of milliseconds, not 'soon'"
            ),
            "{e}"
        );
        let e = Config::from_env_vars(vars(&[("RPC_REGISTRY", "nacos://h:8848?namespce=x")]))
            .expect_err("env");
        assert!(
            e.to_string()
                .contains("unknown key 'namespce' in RPC_REGISTRY"),
            "{e}"
        );
        // A malformed URL says where it came from.
        let e = ConfigBuilder::new()
            .registry("nope")
            .expect_err("malformed");
        assert!(
            e.to_string()
                .contains("the registry URL: malformed URL 'nope'"),
            "{e}"
        );
    }

    #[test]
    fn url_is_only_a_reference_field() {
        let e = Config::from_toml_str("[services.\"a.B\"]\nurl = \"dubbo://h:1\"\n")
            .expect_err("url on a service");
        assert!(
            e.to_string()
                .contains("'url' in [services.\"a.B\"] is only meaningful for a reference"),
            "{e}"
        );
    }

    #[test]
    fn environment_beats_code_beats_file() {
        let dir = std::env::temp_dir().join(format!("rpc-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("app.toml");
        std::fs::write(&path, FILE).expect("write");

        let cfg = ConfigBuilder::new()
            .env_vars(vars(&[
                ("RPC_PARAM_TIMEOUT", "7"),
                ("RPC_APPLICATION", "from-env"),
            ]))
            .expect("env")
            .file(&path)
            .expect("file")
            .application("from-code")
            .param(keys::RETRIES, 5)
            .expect("known key")
            .param(keys::TIMEOUT, 9)
            .expect("known key")
            .build();
        assert_eq!(cfg.application.as_deref(), Some("from-env"));
        assert_eq!(cfg.params.get("timeout").map(String::as_str), Some("7"));
        assert_eq!(cfg.params.get("retries").map(String::as_str), Some("5"));
        // The file's other settings are still there.
        assert_eq!(cfg.port, Some(20880));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rpc_config_variable_loads_the_file() {
        let dir = std::env::temp_dir().join(format!("rpc-config-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("app.toml");
        std::fs::write(&path, FILE).expect("write");
        let cfg = ConfigBuilder::new()
            .env_vars(vars(&[("RPC_CONFIG", path.to_str().expect("utf8"))]))
            .expect("env")
            .build();
        assert_eq!(cfg.application.as_deref(), Some("shop"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn env_keys_map_dots_to_underscores_and_unknown_ones_fail() {
        let cfg = Config::from_env_vars(vars(&[
            ("RPC_PARAM_CONNECT_TIMEOUT", "250"),
            ("RPC_PORT", "0"),
            ("RPC_TEST_SOMETHING", "ignored"),
            ("PATH", "/bin"),
        ]))
        .expect("env");
        assert_eq!(
            cfg.params.get("connect.timeout").map(String::as_str),
            Some("250")
        );
        assert_eq!(cfg.port, Some(0));

        let e = Config::from_env_vars(vars(&[("RPC_PARAM_TIMEOTU", "1")])).expect_err("typo");
        assert!(
            e.to_string()
                .contains("unknown configuration variable RPC_PARAM_TIMEOTU"),
            "{e}"
        );
        assert!(
            e.to_string().contains("did you mean RPC_PARAM_TIMEOUT"),
            "{e}"
        );
        let e = Config::from_env_vars(vars(&[("RPC_PARAM_RETRIES", "many")])).expect_err("kind");
        assert!(e.to_string().contains("must be a whole number"), "{e}");
    }

    #[test]
    fn builder_checks_keys() {
        let e = ConfigBuilder::new()
            .param("loadbalancer", "random")
            .expect_err("typo");
        assert!(e.to_string().contains("did you mean 'loadbalance'"), "{e}");
        let e = ConfigBuilder::new()
            .reference(
                "a.B",
                ServiceConfig::default().method_param("m", "retires", 1),
            )
            .expect_err("typo");
        assert!(
            e.to_string()
                .contains("unknown key 'retires' in reference a.B method m"),
            "{e}"
        );
        let cfg = ConfigBuilder::new()
            .reference(
                "a.B",
                ServiceConfig::default()
                    .param(keys::TIMEOUT, 10)
                    .method_param("m", keys::TIMEOUT, 5),
            )
            .expect("valid")
            .build();
        let url = cfg.reference_url("a.B", &[]);
        assert_eq!(url.method_param("m", keys::TIMEOUT), Some("5"));
        assert_eq!(url.method_param("n", keys::TIMEOUT), Some("10"));
    }
}
