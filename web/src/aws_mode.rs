//! The AWS mode's page glue: the credentials a running fleet signs with (pasted, or from
//! a Cognito Identity Pool, renewed before they expire), AWS's time read from Cognito's
//! answers (`aws.rs`, "The signing clock"), the presigned-URL source for the MQTT
//! transport, and the controls. Behind the `aws` feature, on by default: with
//! `--no-default-features` the page builds without SigV4 and Cognito (a smaller download)
//! and says so when AWS mode is chosen.

#[cfg(feature = "aws")]
pub use with_aws::{AwsControls, AwsMode, SignIn};
#[cfg(not(feature = "aws"))]
pub use without_aws::{AwsControls, AwsMode, NOTE};

#[cfg(feature = "aws")]
mod with_aws {
    use std::rc::Rc;

    use leptos::prelude::*;
    use wasm_bindgen::JsCast;

    use fleet_core::BuildingId;

    use fleet_clock::now_ms;

    use crate::aws;
    use crate::identity::{GUEST_BUILDING, PageIdentity};
    use crate::settings::Settings;
    use crate::transport::mqtt::{MqttConfig, UrlSource};

    /// How a fleet signs its connections.
    #[derive(Debug)]
    pub enum SignIn {
        /// The user's pasted keys: the page names its own namespace.
        Pasted(aws::Session),
        /// A Cognito guest: IoT Core binds its client ids to its identity id.
        Guest {
            /// `REGION:UUID`.
            identity_id: String,
            /// Its current credentials.
            session: aws::Session,
        },
    }

    impl SignIn {
        /// Who the page is to IoT Core: a guest is confined to one building (`building`,
        /// or [`GUEST_BUILDING`]), named after its identity; pasted keys use `generated`,
        /// in `building` if one is set.
        pub fn identity(
            &self,
            building: Option<&str>,
            generated: PageIdentity,
        ) -> Result<PageIdentity, String> {
            let building = building
                .map(|b| BuildingId::try_from(b).map_err(|e| format!("building {b:?}: {e}")))
                .transpose()?;
            match self {
                SignIn::Pasted(_) => Ok(generated.in_building(building)),
                SignIn::Guest { identity_id, .. } => {
                    let building = match building {
                        Some(b) => b,
                        None => BuildingId::try_from(GUEST_BUILDING).map_err(|e| e.to_string())?,
                    };
                    PageIdentity::cognito(identity_id, building)
                }
            }
        }
    }

    /// Ask AWS for the time again after a refusal at most this often.
    const TIME_PROBE_EVERY_MS: u64 = 60_000;

    /// The AWS mode's state in the page. `Copy`: it is handles into the reactive arena.
    #[derive(Clone, Copy)]
    pub struct AwsMode {
        /// Pasted `(access key id, secret, session token)`: memory only.
        pasted: RwSignal<(String, String, String)>,
        session: StoredValue<Option<aws::SharedSession>, LocalStorage>,
        /// The running fleet's Cognito identity id, if it is a guest.
        guest: StoredValue<Option<String>>,
        refreshing: StoredValue<bool>,
        last_check: StoredValue<u64>,
        settings: RwSignal<Settings>,
        errors: RwSignal<Vec<String>>,
    }

    /// AWS's time as this page knows it: one clock per page, kept across fleets (a guest's
    /// signatures and every skew message read it; every Cognito answer sets it).
    fn aws_time() -> aws::SharedTime {
        thread_local! {
            static TIME: aws::SharedTime = Rc::default();
        }
        TIME.with(Rc::clone)
    }

    impl AwsMode {
        /// The mode's state for a page with these settings and error list.
        pub fn new(settings: RwSignal<Settings>, errors: RwSignal<Vec<String>>) -> AwsMode {
            AwsMode {
                pasted: RwSignal::new((String::new(), String::new(), String::new())),
                session: StoredValue::new_local(None),
                guest: StoredValue::new(None),
                refreshing: StoredValue::new(false),
                last_check: StoredValue::new(0),
                settings,
                errors,
            }
        }

        /// Gets the credentials a fleet signs with, before it starts: the pasted ones, or a
        /// Cognito guest's (`GetId` once, the identity id remembered, then
        /// `GetCredentialsForIdentity`). A guest's client ids and device ids are named after
        /// its identity id, so its fleet cannot be built before the id is known.
        pub async fn sign_in(&self, s: &Settings) -> Result<SignIn, String> {
            let (key, secret, token) = self.pasted.get_untracked();
            if !key.trim().is_empty() {
                return aws::pasted_credentials(&key, &secret, &token).map(SignIn::Pasted);
            }
            let Some(pool) = s.pool.clone() else {
                return Err(
                    "AWS mode needs a Cognito Identity Pool id or pasted credentials".to_owned(),
                );
            };
            let endpoint = aws::cognito_endpoint(&s.region, s.cognito.as_deref());
            let time = aws_time();
            let (identity_id, session) = cognito_guest(&time, &endpoint, &pool)
                .await
                .map_err(|e| e.to_string())?;
            Ok(SignIn::Guest {
                identity_id,
                session,
            })
        }

        /// Signs a fleet's connections to `endpoint` with `sign_in` (a guest with AWS's time,
        /// pasted keys with this computer's): sets the 24 h renewal on `mqtt`, keeps a
        /// guest's credentials renewed, and returns the URL source.
        pub fn start(
            &self,
            s: &Settings,
            endpoint: &str,
            sign_in: SignIn,
            mqtt: &mut MqttConfig,
        ) -> UrlSource {
            let (session, guest, signing) = match sign_in {
                SignIn::Pasted(session) => (session, None, aws::SigningClock::Local),
                SignIn::Guest {
                    identity_id,
                    session,
                } => (session, Some(identity_id), aws::SigningClock::Aws),
            };
            let shared: aws::SharedSession = Rc::new(std::cell::RefCell::new(Some(session)));
            self.session.set_value(Some(Rc::clone(&shared)));
            self.guest.set_value(guest);
            self.last_check.set_value(0);
            let time = aws_time();
            time.reset();
            mqtt.max_connection_ms = Some(aws::MAX_CONNECTION_MS);
            Box::new(aws::Presigner::new(
                shared,
                time,
                signing,
                s.region.clone(),
                endpoint.to_owned(),
            ))
        }

        /// Called every frame: every 10 s, renews a guest's Cognito credentials that are
        /// about to expire (by AWS's time), for the same identity (its fleet's ids are named
        /// after it). Pasted credentials cannot be renewed; IoT Core refuses them once
        /// expired, which the page then says. After IoT Core refused a URL, asks AWS for the
        /// time again (at most once a minute): a guest by renewing its credentials, pasted
        /// keys by a time probe, so the next refusal can name a skewed clock.
        pub fn tick(&self, now: u64) {
            let time = aws_time();
            let probe = !self.refreshing.get_value() && time.ask_now(now, TIME_PROBE_EVERY_MS);
            let checked = self.last_check.get_value();
            // (A clock set back counts as time passed.)
            if !probe && (checked..checked + 10_000).contains(&now) {
                return;
            }
            self.last_check.set_value(now);
            let Some(shared) = self.session.get_value() else {
                return;
            };
            let s = self.settings.get_untracked();
            let endpoint = aws::cognito_endpoint(&s.region, s.cognito.as_deref());
            let guest = self.guest.get_value();
            let aws_now = time.now(now);
            let due = probe
                || guest.is_some()
                    && shared
                        .borrow()
                        .as_ref()
                        .is_none_or(|c| c.needs_refresh(aws_now));
            if due && !self.refreshing.get_value() {
                self.refresh(endpoint, guest);
            }
        }

        /// Forgets the running fleet's credentials (Stop).
        pub fn stop(&self) {
            self.session.set_value(None);
            self.guest.set_value(None);
        }

        /// Renews a guest's credentials (which also reads AWS's time), or for pasted keys
        /// (`None`) only reads AWS's time: one task either way.
        fn refresh(&self, endpoint: String, identity_id: Option<String>) {
            let this = *self;
            this.refreshing.set_value(true);
            let time = aws_time();
            wasm_bindgen_futures::spawn_local(async move {
                let Some(identity_id) = identity_id else {
                    time_probe(&time, &endpoint).await;
                    this.refreshing.set_value(false);
                    return;
                };
                let result = guest_credentials(&time, &endpoint, &identity_id).await;
                this.refreshing.set_value(false);
                let Some(shared) = this.session.get_value() else {
                    return; // stopped meanwhile
                };
                match result {
                    Ok(session) => *shared.borrow_mut() = Some(session),
                    Err(e) => this.errors.update(|v| {
                        let e = format!("renewing the AWS credentials: {e}");
                        if !v.contains(&e) {
                            v.push(e);
                        }
                    }),
                }
            });
        }
    }

    /// Endpoint, region and pool id (settings), or pasted credentials (memory only).
    #[component]
    pub fn AwsControls(
        aws_mode: AwsMode,
        settings: RwSignal<Settings>,
        errors: RwSignal<Vec<String>>,
    ) -> impl IntoView {
        // A text setting: applied on change; a value that cannot be used is said and dropped.
        let text = move |label: &'static str,
                         key: &'static str,
                         placeholder: &'static str,
                         get: fn(&Settings) -> String| {
            view! {
                <label>
                    {label}
                    <input
                        type="text"
                        size="24"
                        placeholder=placeholder
                        data-testid=format!("aws-{key}")
                        prop:value=move || settings.with(get)
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            let mut warnings = Vec::new();
                            settings.update(|s| s.apply([(key, v.as_str())], &mut warnings));
                            errors.update(|e| e.extend(warnings));
                        }
                    />
                </label>
            }
        };
        // Pasted credentials: in memory only, never stored or put in a link.
        let secret =
            move |label: &'static str, testid: &'static str, kind: &'static str, part: usize| {
                view! {
                    <label>
                        {label}
                        <input
                            type=kind
                            size="20"
                            autocomplete="off"
                            spellcheck="false"
                            data-testid=testid
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                aws_mode.pasted.update(|p| match part {
                                    0 => p.0 = v,
                                    1 => p.1 = v,
                                    _ => p.2 = v,
                                });
                            }
                        />
                    </label>
                }
            };
        view! {
            <div class="controls aws" data-testid="aws-settings">
                {text("Endpoint ", "endpoint", "xxxx-ats.iot.REGION.amazonaws.com", |s| {
                    s.endpoint.clone().unwrap_or_default()
                })}
                {text("Region ", "region", "us-east-1", |s| s.region.clone())}
                {text("Identity pool ", "pool", "REGION:GUID", |s| {
                    s.pool.clone().unwrap_or_default()
                })}
                {text("Basic Ingest rule ", "rule", "none", |s| s.rule.clone().unwrap_or_default())}
                {text("Building ", "building", GUEST_BUILDING, |s| {
                    s.building.clone().unwrap_or_default()
                })}
                <span class="hint" data-testid="aws-building-note">
                    "A Cognito guest runs all its devices in this one building (the \
                     template's browser building): the Buildings setting applies only \
                     with pasted credentials."
                </span>
                <details class="creds">
                    <summary>"or paste temporary credentials"</summary>
                    {secret("Access key id ", "aws-key", "text", 0)}
                    {secret("Secret access key ", "aws-secret", "password", 1)}
                    {secret("Session token ", "aws-token", "password", 2)}
                    <span class="hint" data-testid="aws-clock-note">
                        "Pasted credentials are signed with this computer's clock (IoT Core \
                         refuses it more than 5 minutes off); a pool's guest signs with AWS's \
                         time."
                    </span>
                </details>
            </div>
        }
    }

    fn storage() -> Option<web_sys::Storage> {
        window().local_storage().ok().flatten()
    }

    /// Calls one of Cognito Identity's JSON actions (unsigned: the unauthenticated flow needs
    /// no signature). Returns the status, the body and whether the answer's `Date` was
    /// readable, which sets `time` to AWS's (Cognito exposes the header to pages).
    async fn cognito_call(
        time: &aws::SharedTime,
        endpoint: &str,
        action: &str,
        body: &str,
    ) -> Result<(u16, String, bool), aws::CognitoError> {
        use wasm_bindgen_futures::JsFuture;
        let resp = post(endpoint, action, body)
            .await
            .map_err(|_| aws::CognitoError::Unreachable(endpoint.to_owned()))?;
        // The headers arrived just now: the moment the server's time is compared with.
        let received = now_ms();
        // `Date.parse` reads the HTTP date form (it is `toUTCString()`'s): no parser in wasm.
        let date = match resp.headers().get("date") {
            Ok(Some(date)) => js_sys::Date::parse(&date),
            _ => f64::NAN,
        };
        let dated = date >= 0.0;
        if dated {
            time.observe_date(date as u64, received);
        }
        let text = match resp.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        Ok((resp.status(), text.unwrap_or_default(), dated))
    }

    /// POSTs `body` to Cognito Identity's JSON action `action`; errors are the browser's.
    async fn post(
        endpoint: &str,
        action: &str,
        body: &str,
    ) -> Result<web_sys::Response, wasm_bindgen::JsValue> {
        let headers = web_sys::Headers::new()?;
        headers.append("Content-Type", "application/x-amz-json-1.1")?;
        headers.append(
            "X-Amz-Target",
            &format!("AWSCognitoIdentityService.{action}"),
        )?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&wasm_bindgen::JsValue::from_str(body));
        let request = web_sys::Request::new_with_str_and_init(endpoint, &init)?;
        wasm_bindgen_futures::JsFuture::from(window().fetch_with_request(&request))
            .await?
            .dyn_into()
    }

    /// Reads AWS's time from Cognito's regional endpoint without a pool: a `GetId` with no
    /// pool id is refused (`ValidationException`), and the refusal carries the `Date`.
    async fn time_probe(time: &aws::SharedTime, endpoint: &str) {
        let _ = cognito_call(time, endpoint, "GetId", "{}").await;
    }

    /// `localStorage` key of the Cognito identity id of a pool (not a secret: it names an
    /// identity, it grants nothing without the pool's credentials call).
    fn identity_key(pool: &str) -> String {
        format!("fleet.identity.{pool}")
    }

    /// The pool's unauthenticated identity and its credentials: `GetId` (once: the identity
    /// id is remembered), then `GetCredentialsForIdentity`. A remembered identity Cognito
    /// no longer knows (the pool was recreated) is replaced once.
    async fn cognito_guest(
        time: &aws::SharedTime,
        endpoint: &str,
        pool: &str,
    ) -> Result<(String, aws::Session), aws::CognitoError> {
        let store = storage();
        let cached = store
            .as_ref()
            .and_then(|s| s.get_item(&identity_key(pool)).ok().flatten());
        for cached in [cached, None] {
            let from_cache = cached.is_some();
            let id = match cached {
                Some(id) => id,
                None => {
                    let body = format!(
                        "{{\"IdentityPoolId\":{}}}",
                        serde_json::to_string(pool).unwrap_or_default()
                    );
                    let (status, text, _) = cognito_call(time, endpoint, "GetId", &body).await?;
                    let id = aws::parse_get_id(status, &text)?;
                    if let Some(s) = &store {
                        let _ = s.set_item(&identity_key(pool), &id);
                    }
                    id
                }
            };
            match guest_credentials(time, endpoint, &id).await {
                Err(aws::CognitoError::Refused { .. }) if from_cache => {
                    if let Some(s) = &store {
                        let _ = s.remove_item(&identity_key(pool));
                    }
                }
                other => return other.map(|session| (id, session)),
            }
        }
        Err(aws::CognitoError::Unexpected("no identity".to_owned()))
    }

    /// `GetCredentialsForIdentity` for `identity_id`. An answer whose `Date` the browser
    /// hid still tells AWS's time: the credentials expire an hour after they are issued.
    async fn guest_credentials(
        time: &aws::SharedTime,
        endpoint: &str,
        identity_id: &str,
    ) -> Result<aws::Session, aws::CognitoError> {
        let body = format!(
            "{{\"IdentityId\":{}}}",
            serde_json::to_string(identity_id).unwrap_or_default()
        );
        let (status, text, dated) =
            cognito_call(time, endpoint, "GetCredentialsForIdentity", &body).await?;
        let session = aws::parse_credentials(status, &text)?;
        if let (false, Some(expires)) = (dated, session.expires_ms) {
            time.observe(
                expires.saturating_sub(aws::COGNITO_CREDENTIALS_LIFETIME_MS),
                now_ms(),
            );
        }
        Ok(session)
    }
}

#[cfg(not(feature = "aws"))]
mod without_aws {
    use leptos::prelude::*;

    use crate::settings::Settings;

    /// This build has no AWS mode.
    #[derive(Clone, Copy)]
    pub struct AwsMode;

    impl AwsMode {
        /// Nothing to keep.
        pub fn new(_settings: RwSignal<Settings>, _errors: RwSignal<Vec<String>>) -> AwsMode {
            AwsMode
        }

        /// Nothing to renew.
        pub fn tick(&self, _now: u64) {}

        /// Nothing to forget.
        pub fn stop(&self) {}
    }

    /// What the page says when AWS mode is chosen.
    pub const NOTE: &str =
        "this build of the page has no AWS mode (it was built without the `aws` feature)";

    /// Says that this build has no AWS mode.
    #[component]
    pub fn AwsControls(
        aws_mode: AwsMode,
        settings: RwSignal<Settings>,
        errors: RwSignal<Vec<String>>,
    ) -> impl IntoView {
        let _ = (aws_mode, settings, errors);
        view! { <span class="hint" data-testid="aws-settings">{NOTE}</span> }
    }
}
