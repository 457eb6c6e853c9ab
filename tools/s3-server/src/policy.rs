// Users with IAM-style policies, so that a test can run mediagate with the least privileges
// contract §6 lists instead of the store's root credentials, on the very policy document an
// operator gives MinIO (`mc admin policy create`) or AWS IAM.
//
// The subset understood is the one such a document needs: statements with `Effect` (Allow or
// Deny), `Action` and `Resource` (a string or a list; `*` and `?` wildcards; actions compared
// without regard to case, as AWS does), and an optional `Sid`. Anything else (`Condition`,
// `NotAction`, `NotResource`, `Principal`) makes the policy fail to load: a stand-in that
// silently allowed what it did not understand would prove nothing.
//
// Evaluation is AWS's: an explicit Deny wins, then any Allow, else the request is denied.
// Each S3 operation is mapped to the action AWS authorizes it with (HeadBucket and the listings
// need s3:ListBucket on `arn:aws:s3:::bucket`; HeadObject needs s3:GetObject on
// `arn:aws:s3:::bucket/key`; the parts of a multipart upload need s3:PutObject; CopyObject needs
// s3:GetObject on its source too; DeleteObjects needs s3:DeleteObject on every key, checked in
// main.rs). An operation not mapped here is denied to every user but root.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Policy, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = doc.as_object().ok_or("a policy is a JSON object")?;
        for key in obj.keys() {
            if key != "Version" && key != "Statement" && key != "Id" {
                return Err(format!("unsupported policy key {key:?}"));
            }
        }
        let statements = match obj.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err("Statement must be an object or a list of objects".into()),
        };
        let mut out = Vec::new();
        for (i, st) in statements.into_iter().enumerate() {
            let st = st.as_object().ok_or(format!("statement {i} is not an object"))?;
            for key in st.keys() {
                if !matches!(key.as_str(), "Sid" | "Effect" | "Action" | "Resource") {
                    return Err(format!("statement {i}: {key:?} is not supported by this stand-in"));
                }
            }
            let effect = match st.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                other => return Err(format!("statement {i}: Effect must be Allow or Deny, not {other:?}")),
            };
            let actions =
                strings(st.get("Action")).ok_or(format!("statement {i}: Action must be a string or a list"))?;
            let resources =
                strings(st.get("Resource")).ok_or(format!("statement {i}: Resource must be a string or a list"))?;
            out.push(Statement { effect, actions, resources });
        }
        Ok(Policy { statements: out })
    }

    /// Whether `action` (`s3:GetObject`) on `resource` (`arn:aws:s3:::bucket/key`) is allowed.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        let matching = |effect: Effect| {
            self.statements.iter().filter(move |s| s.effect == effect).any(|s| {
                s.actions.iter().any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
                    && s.resources.iter().any(|r| glob(r, resource))
            })
        };
        !matching(Effect::Deny) && matching(Effect::Allow)
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(list) => list.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// `*` matches any run of characters (`/` included, as in IAM), `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// The IAM action an S3 operation is authorized with, and whether its resource is the bucket
/// (`false`: the object). `None`: not mapped (denied to every user but root).
pub fn action_of(op: &str) -> Option<(&'static str, bool)> {
    Some(match op {
        "ListBuckets" => ("s3:ListAllMyBuckets", true),
        "CreateBucket" => ("s3:CreateBucket", true),
        "DeleteBucket" => ("s3:DeleteBucket", true),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => ("s3:ListBucket", true),
        "ListObjectVersions" => ("s3:ListBucketVersions", true),
        "ListMultipartUploads" => ("s3:ListBucketMultipartUploads", true),
        "GetBucketLocation" => ("s3:GetBucketLocation", true),
        "GetObject" | "HeadObject" | "GetObjectAttributes" => ("s3:GetObject", false),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => ("s3:PutObject", false),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", false),
        "ListParts" => ("s3:ListMultipartUploadParts", false),
        "DeleteObject" => ("s3:DeleteObject", false),
        // DeleteObjects is not here: main.rs authorizes it key by key (s3:DeleteObject on each).
        _ => return None,
    })
}

/// Users by access key: their secret and policy. Root (`--access-key`) is not in here.
#[derive(Debug, Clone, Default)]
pub struct Users {
    pub by_key: BTreeMap<String, (String, Policy)>,
}

impl Users {
    /// `ACCESS_KEY:SECRET_KEY:POLICY_FILE`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let mut parts = spec.splitn(3, ':');
        let (Some(ak), Some(sk), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("--user {spec:?}: expected ACCESS_KEY:SECRET_KEY:POLICY_FILE"));
        };
        if ak.is_empty() || sk.is_empty() {
            return Err(format!("--user {spec:?}: empty access or secret key"));
        }
        let policy = Policy::load(Path::new(file))?;
        self.by_key.insert(ak.to_string(), (sk.to_string(), policy));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: &str = r#"{
      "Version": "2012-10-17",
      "Statement": [
        { "Sid": "Buckets", "Effect": "Allow", "Action": ["s3:ListBucket"],
          "Resource": ["arn:aws:s3:::incoming", "arn:aws:s3:::media"] },
        { "Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::incoming/*", "arn:aws:s3:::media/*"] },
        { "Effect": "Allow", "Action": ["s3:Put*", "s3:DeleteObject"], "Resource": "arn:aws:s3:::media/*" },
        { "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::media/secret/*" }
      ]
    }"#;

    #[test]
    fn allow_deny_and_the_default() {
        let p = Policy::parse(WORKER).unwrap();
        assert!(p.allows("s3:ListBucket", "arn:aws:s3:::incoming"));
        // ListBucket is granted on the bucket, not on its objects, and vice versa.
        assert!(!p.allows("s3:ListBucket", "arn:aws:s3:::incoming/a.jpg"));
        assert!(!p.allows("s3:GetObject", "arn:aws:s3:::incoming"));
        assert!(p.allows("s3:GetObject", "arn:aws:s3:::incoming/deep/a.jpg"));
        assert!(!p.allows("s3:PutObject", "arn:aws:s3:::incoming/a.jpg"));
        assert!(p.allows("s3:PutObject", "arn:aws:s3:::media/j/0/full.jpg"));
        assert!(p.allows("S3:putobject", "arn:aws:s3:::media/x"), "actions ignore case");
        assert!(!p.allows("s3:GetObject", "arn:aws:s3:::Media/x"), "resources do not");
        assert!(!p.allows("s3:GetObject", "arn:aws:s3:::media/secret/x"), "an explicit Deny wins");
        assert!(!p.allows("s3:CreateBucket", "arn:aws:s3:::quarantine"), "nothing granted is denied");
        // A bucket whose name starts like an allowed one is another bucket.
        assert!(!p.allows("s3:GetObject", "arn:aws:s3:::incoming-old/a.jpg"));
    }

    #[test]
    fn what_it_does_not_understand_is_refused() {
        for bad in [
            r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {}}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "allow", "Action": "s3:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]}"#,
            r#"{"Statement": "x"}"#,
            r#"{"Policy": []}"#,
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/a/b/c"));
        assert!(glob("arn:aws:s3:::b/*", "arn:aws:s3:::b/"));
        assert!(!glob("arn:aws:s3:::b/*", "arn:aws:s3:::b"));
        assert!(glob("a?c*", "abcdef"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(glob("s3:*object", "s3:getobject"));
    }

    #[test]
    fn operations_map_to_the_actions_aws_checks() {
        assert_eq!(action_of("HeadBucket"), Some(("s3:ListBucket", true)));
        assert_eq!(action_of("ListObjectsV2"), Some(("s3:ListBucket", true)));
        assert_eq!(action_of("HeadObject"), Some(("s3:GetObject", false)));
        assert_eq!(action_of("UploadPart"), Some(("s3:PutObject", false)));
        assert_eq!(action_of("PutBucketPolicy"), None);
    }
}
