//! Layering, defaults and validation of the host configuration.

use super::*;

#[test]
fn command_line_beats_file_and_file_beats_defaults() {
    let dir = std::env::temp_dir().join(format!("pacsync-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("host.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\nlease_seconds = 30\ndata_dir = \"/srv/p\"\n",
    )
    .unwrap();
    let cli = Settings {
        lease_seconds: Some(7),
        ..Settings::default()
    };
    let config = Config::resolve(cli, Some(&file)).unwrap();
    assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(config.lease, Duration::from_secs(7));
    assert_eq!(config.jwt_key_file, PathBuf::from("/srv/p/jwt-secret"));
    assert_eq!(config.reaper_interval, Duration::from_secs(5));
    assert_eq!(config.tls, None, "plain HTTP unless a certificate is given");
    assert_eq!(
        config.availability_max_age,
        Some(Duration::from_secs(30 * 86_400))
    );
    let never = Settings {
        availability_max_age_days: Some(0),
        ..Settings::default()
    };
    assert_eq!(
        Config::resolve(never, None).unwrap().availability_max_age,
        None
    );
}

#[test]
fn rejects_unknown_keys_and_bad_values() {
    let dir = std::env::temp_dir().join(format!("pacsync-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("host.toml");
    std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
    assert!(matches!(
        Config::resolve(Settings::default(), Some(&file)),
        Err(ConfigError::Parse { .. })
    ));
    let zero = Settings {
        lease_seconds: Some(0),
        ..Settings::default()
    };
    assert!(matches!(
        Config::resolve(zero, None),
        Err(ConfigError::Invalid { .. })
    ));
    let beyond_wasm32 = Settings {
        plugin_memory_mib: Some(4097),
        ..Settings::default()
    };
    assert!(matches!(
        Config::resolve(beyond_wasm32, None),
        Err(ConfigError::Invalid {
            name: "plugin_memory_mib",
            ..
        })
    ));
    let no_slots = Settings {
        plugin_concurrency: Some(0),
        ..Settings::default()
    };
    assert!(matches!(
        Config::resolve(no_slots, None),
        Err(ConfigError::Invalid {
            name: "plugin limits",
            ..
        })
    ));
    let cert_without_key = Settings {
        tls_cert: Some("/etc/pacsync/cert.pem".into()),
        ..Settings::default()
    };
    assert!(matches!(
        Config::resolve(cert_without_key, None),
        Err(ConfigError::Invalid {
            name: "tls_cert / tls_key",
            ..
        })
    ));
}

#[test]
fn debug_never_shows_the_database_url() {
    let cli = Settings {
        database_url: Some("postgres://u:hunter2@db/pacsync".into()),
        ..Settings::default()
    };
    let config = Config::resolve(cli, None).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn limits_have_fleet_sized_defaults_and_refuse_zero() {
    let config = Config::resolve(Settings::default(), None).unwrap();
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.limits.streams_per_endpoint, 4);
    assert_eq!(
        config.state_retention,
        Some(Duration::from_secs(30 * 86_400))
    );
    let set = Settings {
        rate_limit_endpoint_per_second: Some(3),
        rate_limit_endpoint_burst: Some(7),
        request_timeout_ms: Some(1500),
        state_retention_days: Some(0),
        ..Settings::default()
    };
    let config = Config::resolve(set, None).unwrap();
    assert_eq!(
        (
            config.limits.endpoint.per_second.get(),
            config.limits.endpoint.burst.get()
        ),
        (3, 7)
    );
    assert_eq!(config.limits.admin, Limits::default().admin);
    assert_eq!(config.limits.request_timeout, Duration::from_millis(1500));
    assert_eq!(config.state_retention, None, "0 keeps states forever");
    for zero in [
        Settings {
            rate_limit_address_burst: Some(0),
            ..Settings::default()
        },
        Settings {
            max_streams_per_endpoint: Some(0),
            ..Settings::default()
        },
        Settings {
            request_timeout_ms: Some(0),
            ..Settings::default()
        },
        Settings {
            event_backlog_page: Some(0),
            ..Settings::default()
        },
    ] {
        assert!(matches!(
            Config::resolve(zero, None),
            Err(ConfigError::Invalid { .. })
        ));
    }
}

#[test]
fn limits_come_from_the_config_file_too() {
    let dir = std::env::temp_dir().join(format!("pacsync-config-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("host.toml");
    std::fs::write(
        &file,
        "rate_limit_admin_per_second = 5\nmax_streams_per_admin = 2\nstate_collect_interval_ms = 60000\n",
    )
    .unwrap();
    let config = Config::resolve(Settings::default(), Some(&file)).unwrap();
    assert_eq!(config.limits.admin.per_second.get(), 5);
    assert_eq!(config.limits.streams_per_admin, 2);
    assert_eq!(config.state_collect_interval, Duration::from_secs(60));
}

#[test]
fn a_retention_beyond_a_century_is_refused_and_a_century_is_kept() {
    let too_long = Settings {
        state_retention_days: Some(u32::MAX),
        ..Settings::default()
    };
    assert!(matches!(
        Config::resolve(too_long, None),
        Err(ConfigError::Invalid {
            name: "state_retention_days",
            ..
        })
    ));
    let century = Settings {
        state_retention_days: Some(MAX_STATE_RETENTION_DAYS),
        ..Settings::default()
    };
    assert_eq!(
        Config::resolve(century, None).unwrap().state_retention,
        Some(Duration::from_secs(36_500 * 86_400))
    );
}

#[test]
fn the_log_format_is_human_unless_a_source_says_json() {
    let dir = std::env::temp_dir().join(format!("pacsync-config-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("host.toml");
    std::fs::write(&file, "log_format = \"json\"\n").unwrap();
    assert_eq!(
        Config::resolve(Settings::default(), None)
            .unwrap()
            .log_format,
        LogFormat::Human
    );
    assert_eq!(
        Config::resolve(Settings::default(), Some(&file))
            .unwrap()
            .log_format,
        LogFormat::Json
    );
    std::fs::write(&file, "log_format = \"xml\"\n").unwrap();
    assert!(Config::resolve(Settings::default(), Some(&file)).is_err());
}
