//! The evaluation of policies, checked against ECR's documented semantics and the followers' rules.

use super::*;

/// The policy of ECR's user guide example: expire untagged after 7 days, keep the last 10 tagged `v`.
const GUIDE: &str = r#"{"rules": [
    {"rulePriority": 1, "description": "Expire untagged images older than 7 days",
     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
     "action": {"type": "expire"}},
    {"rulePriority": 2, "description": "Keep last 10 v images",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 10},
     "action": {"type": "expire"}}
]}"#;

fn item(version: &str, tags: &[&str], pushed: Time) -> Item {
    Item {
        package: "app".into(),
        version: version.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed,
        pulled: None,
        follows: Vec::new(),
    }
}

#[test]
fn the_guide_policy_keeps_ten_and_expires_old_untagged() {
    let policy = Policy::parse(GUIDE.as_bytes()).unwrap();
    let day = 86_400;
    let now = 100 * day;
    let mut items: Vec<Item> = (0..15)
        .map(|i| {
            item(
                &format!("m{i:02}"),
                &[&format!("v1.{i}")],
                now - (30 - i) * day,
            )
        })
        .collect();
    items.push(item("other", &["latest"], now - 60 * day));
    items.push(item("old", &[], now - 8 * day));
    items.push(item("young", &[], now - 6 * day));
    let decisions = evaluate(&policy, items, now);
    let removed: Vec<&str> = decisions
        .iter()
        .filter(|d| d.remove)
        .map(|d| d.item.version.as_str())
        .collect();
    assert_eq!(removed, ["m00", "m01", "m02", "m03", "m04", "old"]);
    let other = decisions
        .iter()
        .find(|d| d.item.version == "other")
        .unwrap();
    assert_eq!((other.remove, other.rule), (false, None));
}

#[test]
fn policies_are_checked_as_ecr_checks_them() {
    let rule = |priority: u32, selection: &str| {
        format!(
            r#"{{"rulePriority": {priority}, "selection": {selection}, "action": {{"type": "expire"}}}}"#
        )
    };
    let any = r#"{"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}"#;
    let untagged =
        r#"{"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5}"#;
    let tagged_bare =
        r#"{"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 5}"#;
    let days_missing =
        r#"{"tagStatus": "untagged", "countType": "sinceImagePushed", "countNumber": 5}"#;
    for (rules, message) in [
        (
            vec![rule(1, any), rule(2, untagged)],
            "highest rulePriority",
        ),
        (
            vec![rule(1, untagged), rule(1, tagged_bare)],
            "its own rulePriority",
        ),
        (
            vec![rule(1, tagged_bare)],
            "needs tagPrefixList or tagPatternList",
        ),
        (vec![rule(1, days_missing)], "countUnit"),
        (vec![rule(1, untagged), rule(2, untagged)], "only one rule"),
    ] {
        let json = format!(r#"{{"rules": [{}]}}"#, rules.join(","));
        let error = Policy::parse(json.as_bytes()).unwrap_err();
        assert!(error.message.contains(message), "{json}: {}", error.message);
    }
    assert!(Policy::parse(br#"{"rules": [], "extra": 1}"#).is_err());
}

#[test]
fn followers_share_the_fate_of_what_they_follow() {
    let policy = Policy::parse(GUIDE.as_bytes()).unwrap();
    let day = 86_400;
    let now = 100 * day;
    let follower = |version: &str, follows: &[&str]| Item {
        follows: follows.iter().map(|f| f.to_string()).collect(),
        ..item(version, &[], now - 30 * day)
    };
    let items = vec![
        item("kept", &["v1"], now - 30 * day),
        item("gone", &[], now - 30 * day),
        item("refused", &[], now - 30 * day),
        follower("sig-of-kept", &["kept"]),
        follower("sig-of-gone", &["gone"]),
        follower("sig-of-sig", &["sig-of-gone"]),
        follower("sig-of-refused", &["refused"]),
        follower("in-both", &["kept", "gone"]),
        follower("dangling", &["never-pushed"]),
    ];
    let mut decisions = evaluate(&policy, items, now);
    let mut acted = Vec::new();
    settle(&mut decisions, |d| {
        acted.push(d.item.version.clone());
        match d.item.version.as_str() {
            "refused" => Err("the format refuses".into()),
            _ => Ok(()),
        }
    });
    let removed: Vec<&str> = decisions
        .iter()
        .filter(|d| d.remove)
        .map(|d| d.item.version.as_str())
        .collect();
    assert_eq!(removed, ["gone", "sig-of-gone", "sig-of-sig", "dangling"]);
    // Leaders before followers, and each removal acted on once.
    assert_eq!(
        acted,
        ["gone", "refused", "dangling", "sig-of-gone", "sig-of-sig"]
    );
    let why = |v: &str| {
        decisions
            .iter()
            .find(|d| d.item.version == v)
            .unwrap()
            .why
            .to_string()
    };
    assert_eq!(why("in-both"), "follows kept, gone, which stays");
    assert!(
        why("refused").starts_with("the format refuses, so kept"),
        "{}",
        why("refused")
    );
}

#[test]
fn pull_windows_count_from_the_last_pull_or_the_push() {
    let day = 86_400;
    let now = 100 * day;
    let used = |version: &str, pushed: Time, pulled: Option<Time>| Item {
        pulled: pulled.map(|p| now - p * day),
        ..item(version, &[], now - pushed * day)
    };
    let items = vec![
        used("pulled-lately", 30, Some(2)),
        used("never-pulled", 30, None),
        used("new", 3, None),
        used("pulled-long-ago", 40, Some(20)),
    ];
    let removed = |selection: &str| -> Vec<String> {
        let json = format!(
            r#"{{"rules": [{{"rulePriority": 1, "selection": {selection}, "action": {{"type": "expire"}}}}]}}"#
        );
        let policy = Policy::parse(json.as_bytes()).unwrap();
        evaluate(&policy, items.clone(), now)
            .into_iter()
            .filter(|d| d.remove)
            .map(|d| d.item.version)
            .collect()
    };
    let expected = ["never-pulled", "pulled-long-ago"];
    assert_eq!(
        removed(
            r#"{"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 10}"#
        ),
        expected
    );
    assert_eq!(
        removed(
            r#"{"tagStatus": "any", "countType": "pulledImageCountMoreThan", "countNumber": 2}"#
        ),
        expected
    );
    assert!(
        Policy::parse(
            br#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countNumber": 10}, "action": {"type": "expire"}}]}"#
        )
        .is_err()
    );
}

#[test]
fn equal_push_times_fall_back_to_the_version_in_any_listing_order() {
    let policy = Policy::parse(
        br#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
            "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}}]}"#,
    )
    .unwrap();
    let kept = |versions: &[&str]| {
        let items = versions.iter().map(|v| item(v, &[], 1000)).collect();
        let mut kept: Vec<String> = evaluate(&policy, items, 2000)
            .into_iter()
            .filter(|d| !d.remove)
            .map(|d| d.item.version)
            .collect();
        kept.sort();
        kept
    };
    // Listed in version order (as a key-ordered scan lists them) and out of it: the greatest two stay either way.
    assert_eq!(kept(&["a", "b", "c", "d"]), ["c", "d"]);
    assert_eq!(kept(&["d", "a", "c", "b"]), ["c", "d"]);
}
