//! The checked deployment: the five closed axes as enums, the open properties typed.
//!
//! A [`Deployment`] is what the rest of the kit trusts; only the validator builds one
//! from a [`crate::core::drawer::Drawer`]. See SPEC §3.2–3.3.

use std::fmt;

pub const DEFAULT_IMAGE: &str = "ghcr.io/workbooks-sh/runtime:latest";
pub const DEFAULT_PORT: u16 = 4000;
pub const DEFAULT_PROVIDER: &str = "fly";

/// A closed axis: a fixed list of legal, lowercase values.
pub trait Axis: Sized + Copy + Eq + 'static {
    /// The drawer key that sets it.
    const KEY: &'static str;
    /// Every value with its spelling in the file.
    const VALUES: &'static [(&'static str, Self)];

    fn parse(text: &str) -> Option<Self> {
        Self::VALUES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| *v)
    }

    fn as_str(self) -> &'static str {
        Self::VALUES
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(name, _)| *name)
            .unwrap()
    }

    fn legal() -> String {
        Self::VALUES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// The legal value a near miss meant: same letters in another case, trailing junk,
    /// a known longer spelling, or a small edit distance.
    fn suggest(text: &str) -> Option<&'static str> {
        let folded = text.trim().to_ascii_lowercase();
        let names = Self::VALUES.iter().map(|(name, _)| *name);
        if let Some(hit) = names.clone().find(|n| *n == folded) {
            return Some(hit);
        }
        if let Some(hit) = names
            .clone()
            .find(|n| folded.starts_with(n) || (folded.len() >= 2 && n.starts_with(&folded)))
        {
            return Some(hit);
        }
        names
            .map(|n| (strsim::damerau_levenshtein(&folded, n), n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 3))
            .min()
            .map(|(_, n)| n)
    }
}

macro_rules! axis {
    ($(#[$doc:meta])* $name:ident, $key:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }
        impl Axis for $name {
            const KEY: &'static str = $key;
            const VALUES: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

axis!(
    /// Where the engine runs.
    Place, "ENGINE_PLACE", { Local => "local", Cloud => "cloud" });
axis!(
    /// One tenant per engine, or many.
    Tenancy, "TENANCY_MODE", { Single => "single", Multi => "multi" });
axis!(
    /// Where workbook data lives.
    Storage, "STORAGE", { LocalFs => "local-fs", S3 => "s3" });
axis!(
    /// The engine's database.
    Database, "DATABASE", { Sqlite => "sqlite", Postgres => "postgres" });
axis!(
    /// Who may call the engine.
    Auth, "AUTH", { Trusted => "trusted", BetterAuth => "betterauth", Clerk => "clerk", Oidc => "oidc" });

axis!(
    /// A machine size tier (seed 003): t2 = 512 MB / 1 vCPU, t3 = 2 GB / 2 vCPU,
    /// t4 = 4 GB / 4 vCPU.
    Size, "SIZE", { T2 => "t2", T3 => "t3", T4 => "t4" });
axis!(
    /// What an idle instance does: stop (scale to zero), suspend, or never stop (`off`:
    /// the always-on mode a headless engine running agent loops needs).
    AutoStop, "AUTO_STOP", { Stop => "stop", Suspend => "suspend", Off => "off" });
axis!(
    /// How a new release replaces the old.
    Strategy, "STRATEGY", { Rolling => "rolling", Immediate => "immediate", BlueGreen => "bluegreen", Canary => "canary" });

impl Size {
    pub fn memory_mb(self) -> u32 {
        match self {
            Size::T2 => 512,
            Size::T3 => 2048,
            Size::T4 => 4096,
        }
    }

    pub fn cpus(self) -> u32 {
        match self {
            Size::T2 => 1,
            Size::T3 => 2,
            Size::T4 => 4,
        }
    }
}

/// The most instances `SCALE` may ask for.
pub const MAX_SCALE: u16 = 100;

/// Every key the drawer may hold, closed axes first. Anything else is warned about.
pub const KNOWN_KEYS: &[&str] = &[
    "ENGINE_PLACE",
    "TENANCY_MODE",
    "STORAGE",
    "DATABASE",
    "AUTH",
    "ID",
    "APP",
    "PROVIDER",
    "REGION",
    "IMAGE",
    "PORT",
    "STORAGE_ENDPOINT",
    "STORAGE_BUCKET",
    "STORAGE_REGION",
    "ISSUER",
    "JWKS_URL",
    "PROFILE",
    "SCALE",
    "REGIONS",
    "SIZE",
    "AUTO_STOP",
    "STRATEGY",
];

/// A deployment the validator has accepted (or, for an invalid file, the best reading of
/// it, with defaults where a value was refused — never used to deploy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub place: Place,
    pub tenancy: Tenancy,
    pub storage: Storage,
    pub database: Database,
    pub auth: Auth,
    pub app: Option<String>,
    pub provider: String,
    pub region: Option<String>,
    pub image: String,
    pub port: u16,
    pub storage_endpoint: Option<String>,
    pub storage_bucket: Option<String>,
    pub storage_region: Option<String>,
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub profile: Option<String>,
    /// How many engine instances run (1–100).
    pub scale: u16,
    /// Regions beyond `region` to spread instances over.
    pub regions: Vec<String>,
    /// `None`: the provider's default size.
    pub size: Option<Size>,
    pub auto_stop: AutoStop,
    pub strategy: Strategy,
    /// Names from `#+DEPLOY_SECRETS:`, in declaration order.
    pub secrets: Vec<String>,
    /// The provider properties its recipe declares (`# wb-properties:`), in the recipe's
    /// order, each with its drawer value (empty when unset): `WB_PROP_<KEY>`.
    pub properties: Vec<(String, String)>,
}

impl Deployment {
    /// A deployment with every default and the given place.
    pub fn new(id: &str, place: Place) -> Deployment {
        Deployment {
            id: id.to_string(),
            place,
            tenancy: Tenancy::Single,
            storage: Storage::LocalFs,
            database: Database::Sqlite,
            auth: Auth::Trusted,
            app: None,
            provider: DEFAULT_PROVIDER.to_string(),
            region: None,
            image: DEFAULT_IMAGE.to_string(),
            port: DEFAULT_PORT,
            storage_endpoint: None,
            storage_bucket: None,
            storage_region: None,
            issuer: None,
            jwks_url: None,
            profile: None,
            scale: 1,
            regions: Vec::new(),
            size: None,
            auto_stop: AutoStop::Stop,
            strategy: Strategy::Rolling,
            secrets: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Whether the deployment keeps its data on one machine's volume: one instance with
    /// local files or SQLite. (Several instances need shared stores instead.)
    pub fn needs_volume(&self) -> bool {
        self.scale == 1 && (self.storage == Storage::LocalFs || self.database == Database::Sqlite)
    }

    /// A provider property's value, when the drawer sets it (non-empty).
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The one-line shape printed on success (SPEC §4).
    pub fn summary(&self) -> String {
        let place = match self.place {
            Place::Local => "local".to_string(),
            Place::Cloud => format!(
                "cloud({}:{})",
                self.provider,
                self.app.as_deref().unwrap_or("?")
            ),
        };
        let tenancy = match self.tenancy {
            Tenancy::Single => "single-tenant",
            Tenancy::Multi => "multi-tenant",
        };
        let mut out = format!(
            "{place} · {tenancy} · storage={} · db={}",
            self.storage, self.database
        );
        if self.auth != Auth::Trusted {
            out.push_str(&format!(" · auth={}", self.auth));
        }
        if self.scale > 1 {
            out.push_str(&format!(" · scale={}", self.scale));
        }
        out
    }

    /// The JWKS URL the engine is told: explicit `JWKS_URL` wins, else derived from the
    /// issuer by the auth kind (SPEC §5), never with a double slash.
    pub fn jwks(&self) -> Option<String> {
        if let Some(url) = &self.jwks_url {
            return Some(url.clone());
        }
        let issuer = self.issuer.as_deref()?.trim_end_matches('/');
        let path = match self.auth {
            Auth::Trusted => return None,
            Auth::BetterAuth => "/api/auth/jwks",
            Auth::Clerk | Auth::Oidc => "/.well-known/jwks.json",
        };
        Some(format!("{issuer}{path}"))
    }

    /// Renders the deployment as a canonical Org file: the inverse of the reader.
    pub fn to_org(&self) -> String {
        let mut lines = vec![
            format!("* {} :deployment:", self.id),
            ":PROPERTIES:".to_string(),
        ];
        let mut put = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                lines.push(format!(":{key}: {value}"));
            }
        };
        put("ID", Some(&self.id));
        put("ENGINE_PLACE", Some(self.place.as_str()));
        put("TENANCY_MODE", Some(self.tenancy.as_str()));
        put("STORAGE", Some(self.storage.as_str()));
        put("DATABASE", Some(self.database.as_str()));
        put("AUTH", Some(self.auth.as_str()));
        put("APP", self.app.as_deref());
        put("PROVIDER", Some(&self.provider));
        put("REGION", self.region.as_deref());
        put("IMAGE", Some(&self.image));
        let port = self.port.to_string();
        put("PORT", Some(&port));
        put("STORAGE_ENDPOINT", self.storage_endpoint.as_deref());
        put("STORAGE_BUCKET", self.storage_bucket.as_deref());
        put("STORAGE_REGION", self.storage_region.as_deref());
        put("ISSUER", self.issuer.as_deref());
        put("JWKS_URL", self.jwks_url.as_deref());
        put("PROFILE", self.profile.as_deref());
        let scale = self.scale.to_string();
        put("SCALE", (self.scale != 1).then_some(scale.as_str()));
        let regions = self.regions.join(" ");
        put(
            "REGIONS",
            (!self.regions.is_empty()).then_some(regions.as_str()),
        );
        put("SIZE", self.size.map(Size::as_str));
        put(
            "AUTO_STOP",
            (self.auto_stop != AutoStop::Stop).then(|| self.auto_stop.as_str()),
        );
        put(
            "STRATEGY",
            (self.strategy != Strategy::Rolling).then(|| self.strategy.as_str()),
        );
        for (key, value) in self.properties.iter().filter(|(_, v)| !v.is_empty()) {
            lines.push(format!(":{key}: {value}"));
        }
        lines.push(":END:".to_string());
        if !self.secrets.is_empty() {
            lines.push(format!("#+DEPLOY_SECRETS: {}", self.secrets.join(" ")));
        }
        lines.push(String::new());
        lines.join("\n")
    }
}
