//! The fleet view: `index.html` and the `status.json` it shows, written at the published
//! tree's root by every publication, so that `repo serve`, a bucket's website endpoint
//! and a CDN serve the same page with no code of their own. The page is rendered here
//! (the matrix needs no JavaScript; a little filters the history) and has no external
//! assets. `[publish] dashboard = false` removes both files.
//!
//! The rows of the matrix and the items of the stage differences are rendered per
//! application (`parts.rs`) and kept in a cache (`cache.rs`); a publication reads and
//! renders only the applications whose state changed since, and puts the page and the
//! JSON together from every application's parts.

mod cache;
mod files;
mod parts;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use rusqlite::Connection;
use serde::Serialize;

use crate::naming::distribution::suite_of;
use crate::naming::Distribution;
use crate::repo::clock::format_time;
use crate::repo::config::{KeyState, RepoConfig};
use crate::repo::sign::keys;
use crate::repo::stage_diff;
use crate::repo::state::{self, Action, ReleaseProvenance, Role};
use crate::repo::{subscribe, suites};
use files::Assembly;
use parts::{Part, Text};

/// The files of the dashboard at the published tree's root.
pub(crate) const FILES: [&str; 2] = ["index.html", "status.json"];

/// How many history entries the dashboard shows, newest first.
const HISTORY_LENGTH: usize = 100;

/// The dashboard's parts that are not per application (`status.json`'s other fields,
/// the page's other sections), read from the state with every publication.
#[derive(Debug)]
struct Head {
    schema_version: u64,
    origin: String,
    label: String,
    /// When the page was published (SOURCE_DATE_EPOCH when set).
    generated: String,
    /// The stages in promotion order.
    stages: Vec<String>,
    /// The latest history entries, newest first.
    history: Vec<Event>,
    /// How a server subscribes to each stage.
    subscribe: Subscribe,
    /// The keyring package every suite lists (no application: no row of the matrix).
    keyring: crate::repo::keyring::Shown,
}

/// The URL the page does not know when it is rendered (it is served from anywhere): the
/// `.sources` texts carry this placeholder, and the page's script puts its own address in
/// its place.
pub(crate) const URL_PLACEHOLDER: &str = "REPOSITORY_URL";

/// What a server needs to follow a stage: the `.sources` text per suite, as `repo
/// sources` prints it, and the fingerprints of the keys servers trust.
#[derive(Debug, Serialize)]
struct Subscribe {
    url_placeholder: &'static str,
    /// Every key not retired (signing), upper-case hex.
    fingerprints: Vec<String>,
    suites: Vec<SuiteSources>,
}

/// The `.sources` text of one suite (one stage of one distribution).
#[derive(Debug, Serialize)]
struct SuiteSources {
    stage: String,
    distribution: Option<String>,
    suite: String,
    text: String,
}

/// One history entry.
#[derive(Debug, Serialize)]
struct Event {
    when: String,
    who: String,
    action: Action,
    app: String,
    stage: Option<String>,
    distribution: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The commit of the version moved to, when known.
    commit: Option<String>,
    commit_short: Option<String>,
}

/// Applications changed since the cached dashboard up to which each is read with queries
/// of its own; with more, the whole state is read at once.
const READ_ONE_BY_ONE: usize = 256;

/// What a publication's dashboard is made of, read from the state (committed before
/// any publication) before the suites are published; [`write`] needs no connection, so
/// it runs on a thread of its own while they are.
pub(crate) struct Prepared {
    head: Head,
    /// The cache's key ([`cache_key`]).
    key: u64,
    /// The applications whose state changed since the cached dashboard (every one
    /// without a cache), with their tokens.
    changed: BTreeMap<String, (i64, parts::Facts)>,
    /// The cached parts of every other application.
    kept: BTreeMap<String, Part>,
    /// The applications with a token and nothing to show, with their tokens.
    absent: BTreeMap<String, i64>,
}

/// Reads what the dashboard shows from the state: the applications whose change token
/// differs from the cached dashboard's, and what is not per application.
pub(crate) fn prepare(
    root: &Path,
    connection: &Connection,
    config: &RepoConfig,
    generated: SystemTime,
) -> Result<Prepared> {
    let key = cache_key(config)?;
    let pairs = config.stages.len().saturating_sub(1);
    let tokens = state::app_tokens(connection)?;
    let files = FILES.map(|name| root.join(name));
    let cache::Index {
        parts: mut kept,
        mut absent,
    } = cache::load(root, key, pairs, [&files[0], &files[1]]).unwrap_or_default();
    kept.retain(|app, part| tokens.get(app) == Some(&part.token));
    absent.retain(|app, token| tokens.get(app) == Some(token));
    let changed: Vec<&str> = tokens
        .keys()
        .filter(|app| !kept.contains_key(*app) && !absent.contains_key(*app))
        .map(String::as_str)
        .collect();
    // Every lookup below is in maps read once: with 20,000 applications, a scan of the
    // packages or the history per application was quadratic (seconds per publication).
    let (snapshot, history) = if kept.is_empty() || changed.len() > READ_ONE_BY_ONE {
        kept.clear();
        absent.clear();
        (
            stage_diff::Snapshot::load(connection, config, None)?,
            state::history(connection, None)?,
        )
    } else {
        let mut history = Vec::new();
        for app in &changed {
            history.extend(state::history(connection, Some(app))?);
        }
        (
            stage_diff::Snapshot::load_apps(connection, config, changed.iter().copied())?,
            history,
        )
    };
    let facts = parts::facts(&snapshot, config, &history)?;
    // Applications with a token and nothing to show (every package removed, the keyring
    // package) are recorded too, or each publication would read them again.
    let newly_absent: Vec<(String, i64)> = tokens
        .iter()
        .filter(|(app, _)| {
            !kept.contains_key(*app) && !absent.contains_key(*app) && !facts.contains_key(*app)
        })
        .map(|(app, token)| (app.clone(), *token))
        .collect();
    absent.extend(newly_absent);
    let changed = facts
        .into_iter()
        .map(|(app, facts)| {
            let token = tokens.get(&app).copied().unwrap_or_default();
            (app, (token, facts))
        })
        .collect::<BTreeMap<_, _>>();
    let mut shown: Vec<Option<Distribution>> = Vec::new();
    let codenames = kept.values().flat_map(|part| &part.distributions).chain(
        changed
            .values()
            .flat_map(|(_, facts)| facts.distributions()),
    );
    for codename in codenames {
        let distribution = suites::parse_distribution(codename.as_deref())?;
        if !shown.contains(&distribution) {
            shown.push(distribution);
        }
    }
    shown.sort_by_key(|distribution| suites::distribution_rank(*distribution));
    let generated = generated
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    Ok(Prepared {
        head: Head {
            schema_version: 1,
            origin: config.origin.clone(),
            label: config.label.clone(),
            generated: format_time(generated),
            stages: config.stages.clone(),
            history: latest_history(connection)?,
            subscribe: subscribe(root, connection, config, shown)?,
            keyring: crate::repo::keyring::Shown::of(root, config, connection)?,
        },
        key,
        changed,
        kept,
        absent,
    })
}

/// The latest [`HISTORY_LENGTH`] entries, newest first, with the commits of the
/// versions they moved to.
fn latest_history(connection: &Connection) -> Result<Vec<Event>> {
    let entries = state::latest_history(connection, HISTORY_LENGTH)?;
    let mut provenance = BTreeMap::new();
    for app in entries
        .iter()
        .map(|entry| &entry.app)
        .collect::<BTreeSet<_>>()
    {
        provenance.extend(state::provenance(connection, Some(app))?);
    }
    Ok(entries
        .into_iter()
        .map(|entry| {
            let commit = entry
                .to
                .as_ref()
                .and_then(|to| provenance.get(&(entry.app.clone(), to.clone())))
                .and_then(|known: &ReleaseProvenance| known.commit.clone());
            Event {
                when: format_time(entry.time),
                who: entry.who,
                action: entry.action,
                app: entry.app,
                stage: entry.stage,
                distribution: entry.distribution,
                from: entry.from,
                to: entry.to,
                commit_short: parts::short(&commit),
                commit,
            }
        })
        .collect())
}

/// What the cached parts depend on besides each application's state: this debstage
/// binary (its rendering code and templates), the stages and the keyring's name. Any
/// change of them renders every application again.
fn cache_key(config: &RepoConfig) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    // A rebuilt binary of the same version may render otherwise: its size and time count.
    if let Ok(metadata) = std::env::current_exe().and_then(std::fs::metadata) {
        metadata.len().hash(&mut hasher);
        metadata.modified().ok().hash(&mut hasher);
    }
    config.stages.hash(&mut hasher);
    crate::repo::keyring::package_name(config)?.hash(&mut hasher);
    Ok(hasher.finish())
}

/// The `.sources` text of every stage of every distribution the matrix shows (the host
/// suites when it shows none), and the fingerprints of the keys servers trust.
fn subscribe(
    root: &Path,
    connection: &Connection,
    config: &RepoConfig,
    mut shown: Vec<Option<Distribution>>,
) -> Result<Subscribe> {
    let fingerprints = keys::records(root, &config.signing)?
        .into_iter()
        .filter(|record| record.state == KeyState::Signing)
        .map(|record| record.fingerprint)
        .collect();
    if shown.is_empty() {
        shown.push(None);
    }
    let mut suites = Vec::new();
    for distribution in shown {
        for stage in &config.stages {
            let suite = suite_of(distribution, stage);
            let stage_packages = state::listed_names(connection, &suite, Role::Stage)?;
            suites.push(SuiteSources {
                stage: stage.clone(),
                distribution: suites::codename(distribution),
                text: subscribe::server_text(
                    URL_PLACEHOLDER,
                    &suite,
                    &config.origin,
                    &subscribe::Keyring::of(connection, &config.origin, &suite)?,
                    &stage_packages,
                ),
                suite,
            });
        }
    }
    Ok(Subscribe {
        url_placeholder: URL_PLACEHOLDER,
        fingerprints,
        suites,
    })
}

/// The page, rendered from `templates/dashboard.html` by askama: the template is compiled
/// with the crate (every field it names is checked by the compiler) and HTML-escapes what
/// it prints. The other templates are handlebars', rendered once per build; this one is
/// rendered by every publication, and with 20,000 applications handlebars took ~0.45 s
/// of the ~1.2 s an add took (it turns the whole status into JSON values first, then
/// looks each name up in them), against ~25 ms here (bench/NOTES.md).
#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct Page<'a> {
    status: &'a Head,
    has_rows: bool,
    has_differences: bool,
    /// Where every application's rows go, in name order ([`PLACE`]).
    rows: &'a str,
    /// Where every pair's items go, in promotion order and then by application.
    differences: &'a str,
    /// Every application, in name order.
    apps: Vec<&'a str>,
}

/// What the page is rendered with where the applications' parts go, then cut at: a
/// control character and a name no label, origin or history entry holds (a label that
/// did would make the page fail to render, with a message that says so).
const PLACE: &str = "\u{1}debstage-dashboard-part\u{1}";

/// Renders the changed applications (on every core: with no index there are 20,000),
/// writes both files, [`FILES`], each into a file `temporary` makes in `root` and by
/// rename, with the other applications' parts copied from the files they replace, and
/// records where every part now lies for the next publication. Nothing is synced (with
/// 20,000 applications the syncs of ~20 MB took longer than the rest of an add): the
/// files are no part of what apt reads, a crash can at worst leave them empty, and the
/// index then no longer matches them, so the next publication renders them whole.
pub(crate) fn write(
    root: &Path,
    prepared: Prepared,
    temporary: &dyn Fn() -> Result<tempfile::NamedTempFile>,
) -> Result<()> {
    let Prepared {
        head,
        key,
        changed,
        kept,
        absent,
    } = prepared;
    let rendered = changed
        .into_par_iter()
        .map(|(app, (token, facts))| Ok((app, parts::render(&facts, token, &head.stages)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut parts = kept;
    parts.extend(rendered);
    let pairs = head.stages.len().saturating_sub(1);
    let [html_path, json_path] = FILES.map(|name| root.join(name));
    // Opened only when a part lies in them: the index matched them when it was read,
    // and the lock keeps every other writer out since.
    let uses_previous = parts
        .values()
        .any(|part| matches!(part.html_rows, Text::Old(..)));
    let open = |path: &Path| -> Result<Option<std::fs::File>> {
        if !uses_previous {
            return Ok(None);
        }
        std::fs::File::open(path)
            .map(Some)
            .with_context(|| format!("{}: cannot be read", path.display()))
    };
    let (previous_html, previous_json) = (open(&html_path)?, open(&json_path)?);

    let has_rows = !parts.is_empty();
    let has_differences = parts
        .values()
        .any(|part| part.differences.iter().any(|(html, _)| !html.is_empty()));
    let page = askama::Template::render(&Page {
        status: &head,
        has_rows,
        has_differences,
        rows: PLACE,
        differences: PLACE,
        apps: parts.keys().map(String::as_str).collect(),
    })
    .context("templates/dashboard.html cannot be rendered")?;
    // The page shows each list only when it has an item: it has a place for each one
    // it shows.
    if page.matches(PLACE).count() != usize::from(has_rows) + usize::from(has_differences) {
        bail!("the dashboard's label or origin holds U+0001");
    }
    let mut texts = page.split(PLACE);
    let html_file = temporary()?;
    let mut html = Assembly::new(html_file.as_file(), previous_html.as_ref());
    html.text(texts.next().unwrap_or_default().as_bytes())?;
    for part in parts.values_mut() {
        part.html_rows = html.piece(&part.html_rows)?;
    }
    if has_rows {
        html.text(texts.next().unwrap_or_default().as_bytes())?;
    }
    for pair in 0..pairs {
        for part in parts.values_mut() {
            part.differences[pair].0 = html.piece(&part.differences[pair].0)?;
        }
    }
    if has_differences {
        html.text(texts.next().unwrap_or_default().as_bytes())?;
    }
    html.finish()?;

    let json_file = temporary()?;
    let mut json = Assembly::new(json_file.as_file(), previous_json.as_ref());
    status_json(&mut json, &head, &mut parts)?;
    json.finish()?;

    let mut identities = [[0; 3]; 2];
    for ((file, path), identity) in [(html_file, &html_path), (json_file, &json_path)]
        .into_iter()
        .zip(&mut identities)
    {
        file.persist(path)
            .with_context(|| format!("{}: cannot be written", path.display()))?;
        *identity =
            cache::identity(path).with_context(|| format!("{}: cannot be read", path.display()))?;
    }
    cache::store(root, key, identities, &cache::Index { parts, absent })
}

/// Writes `status.json` (docs/schemas/dashboard-status.schema.json): its fields in this
/// order, each value written by serde, the applications' parts where they go. It is
/// compact: pretty-printed, it was 2.2 times the size (22 MB with 20,000 applications),
/// written and uploaded to every target by every publication.
fn status_json(
    json: &mut Assembly<'_>,
    head: &Head,
    parts: &mut BTreeMap<String, Part>,
) -> Result<()> {
    let mut text = Vec::new();
    text.push(b'{');
    field(&mut text, "schema_version", &head.schema_version)?;
    for (name, value) in [
        ("origin", &head.origin),
        ("label", &head.label),
        ("generated", &head.generated),
    ] {
        text.push(b',');
        field(&mut text, name, value)?;
    }
    text.push(b',');
    field(&mut text, "stages", &head.stages)?;
    text.push(b',');
    field(&mut text, "apps", &parts.keys().collect::<Vec<_>>())?;
    text.extend_from_slice(b",\"applications\":[");
    json.text(&text)?;
    list(json, parts.values_mut().map(|part| &mut part.json_rows))?;
    json.text(b"],\"differences\":[")?;
    let mut first = true;
    for (index, pair) in head.stages.windows(2).enumerate() {
        if parts
            .values()
            .all(|part| part.differences[index].1.is_empty())
        {
            for part in parts.values_mut() {
                part.differences[index].1 = Text::Old(0, 0);
            }
            continue;
        }
        let mut text = Vec::new();
        if !first {
            text.push(b',');
        }
        first = false;
        text.push(b'{');
        field(&mut text, "from_stage", &pair[0])?;
        text.push(b',');
        field(&mut text, "to_stage", &pair[1])?;
        text.extend_from_slice(b",\"applications\":[");
        json.text(&text)?;
        list(
            json,
            parts
                .values_mut()
                .map(|part| &mut part.differences[index].1),
        )?;
        json.text(b"]}")?;
    }
    let mut text = b"],".to_vec();
    field(&mut text, "history", &head.history)?;
    text.push(b',');
    field(&mut text, "subscribe", &head.subscribe)?;
    text.push(b',');
    field(&mut text, "keyring", &head.keyring)?;
    text.extend_from_slice(b"}\n");
    json.text(&text)
}

/// `"name":value`.
fn field<T: Serialize + ?Sized>(json: &mut Vec<u8>, name: &str, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *json, name)?;
    json.push(b':');
    serde_json::to_writer(&mut *json, value)?;
    Ok(())
}

/// The non-empty pieces `items` (each JSON objects separated by commas), separated by
/// commas; each is replaced by where it now lies.
fn list<'a>(json: &mut Assembly<'_>, items: impl Iterator<Item = &'a mut Text>) -> Result<()> {
    let mut first = true;
    for item in items {
        if !item.is_empty() {
            if !first {
                json.separator(b",")?;
            }
            first = false;
        }
        *item = json.piece(item)?;
    }
    Ok(())
}

/// Removes the dashboard's files and its cache (`dashboard = false`): a repository that
/// turns it off stops showing its history.
pub(crate) fn remove(root: &Path) -> Result<()> {
    cache::remove(root)?;
    for name in FILES {
        let path = root.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot be removed", path.display()))
            }
        }
    }
    Ok(())
}
