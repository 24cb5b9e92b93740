//! A small stateful FAKE of the ECS API, shared by the restarter's tests
//! (`tests/ecs.rs`) and by the aws CLI's check of it (`tests/ecs_aws_cli.rs`): it
//! scripts what moto cannot (a rollout reaching COMPLETED, ending FAILED, rolled
//! back by the circuit breaker; a service with the old short ARN; a principal
//! without `ecs:TagResource`), and the vendor's own client proves it speaks ECS.
//!
//! Wire protocol: AWS JSON 1.1, as the service model `ecs-2014-11-13` declares it
//! (botocore `data/ecs/2014-11-13/service-2.json.gz`: `"protocol": "json"`,
//! `"jsonVersion": "1.1"`, `"targetPrefix": "AmazonEC2ContainerServiceV20141113"`):
//! every call is `POST /` named by `X-Amz-Target`, answered with
//! `Content-Type: application/x-amz-json-1.1` and an `x-amzn-RequestId` header. A
//! failure is HTTP 400 with `{"__type": "<Code>", "message": "…"}`, the shape
//! botocore's JSON parser and smithy-rs's `aws-json` error parser read the code
//! from (the `__type` member, optionally `namespace#Code`). Every refusal's code is
//! one the model lists in that operation's `errors` (none sets an `httpStatusCode`,
//! so all are 400), checked against botocore 1.43.11's copy.
//!
//! Each operation below cites the API reference page whose request, response and
//! "Errors" sections it follows:
//! <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Operations.html>.

#![allow(dead_code)]

use std::collections::HashMap;

use serde_json::{json, Value};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Response};

/// The only cluster the fake has.
pub const CLUSTER: &str = "c1";
pub const ARN: &str = "arn:aws:ecs:us-east-1:123456789012";
/// Who the fake says is calling, in an AccessDeniedException.
pub const CALLER: &str = "arn:aws:iam::123456789012:user/vsync-ci";

/// How a fake service's next deployment behaves, chosen by its name's prefix.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Script {
    /// `ok-*`: IN_PROGRESS for two polls, then COMPLETED.
    Completes,
    /// `fail-*`: IN_PROGRESS for one poll, then FAILED (circuit breaker without
    /// rollback).
    Fails,
    /// `rollback-*`: IN_PROGRESS for one poll, then the circuit breaker fails it
    /// and rolls back: it is FAILED and ACTIVE, a rollback deployment is PRIMARY;
    /// one poll later it is gone.
    RollsBack,
    /// `vanish-*`: IN_PROGRESS for one poll, then the deployment is gone and the
    /// previous one PRIMARY again (someone rolled back by hand and it settled
    /// between two polls).
    Vanishes,
    /// Anything else: never leaves IN_PROGRESS.
    Stalls,
}

pub struct FakeService {
    pub name: String,
    pub tags: Vec<Value>,
    pub script: Script,
    controller: &'static str,
    /// A service created before the long ARN format (`*short*` in its name):
    /// `service/<name>` without the cluster.
    pub short_arn: bool,
    pub deployments: Vec<Value>,
    polls: u32,
}

#[derive(Default)]
pub struct FakeState {
    pub services: HashMap<String, FakeService>,
    next_id: u32,
    next_request: u32,
    /// Calls per operation name (`UpdateService`, `TagResource`, …).
    pub calls: HashMap<String, u32>,
    /// UpdateService calls that forced a new deployment.
    pub forced: u32,
    /// Operations the caller's IAM policy does not allow (`TagResource`, …).
    pub denied: Vec<String>,
}

fn error(code: &str, message: &str) -> (u16, Value) {
    (400, json!({"__type": code, "message": message}))
}

impl FakeState {
    pub fn add(&mut self, name: &str) {
        let script = match name.split('-').next().unwrap() {
            "ok" => Script::Completes,
            "fail" => Script::Fails,
            "rollback" => Script::RollsBack,
            "vanish" => Script::Vanishes,
            _ => Script::Stalls,
        };
        let controller = if name.starts_with("codedeploy") {
            "CODE_DEPLOY"
        } else {
            "ECS"
        };
        let first = deployment("ecs-svc/0000", "PRIMARY", "COMPLETED", 2);
        self.services.insert(
            name.to_owned(),
            FakeService {
                name: name.into(),
                tags: vec![],
                script,
                controller,
                short_arn: name.contains("short"),
                deployments: vec![first],
                polls: 0,
            },
        );
    }

    pub fn tag(&self, service: &str, key: &str) -> Option<String> {
        self.services[service]
            .tags
            .iter()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str())
            .map(str::to_owned)
    }

    fn by_arn(&mut self, arn: &str) -> Option<&mut FakeService> {
        self.services.values_mut().find(|s| s.arn() == arn)
    }

    /// One call: (HTTP status, body).
    pub fn handle(&mut self, target: &str, body: &Value) -> (u16, Value) {
        let Some(op) = target
            .strip_prefix("AmazonEC2ContainerServiceV20141113.")
            .map(str::to_owned)
        else {
            // AWS JSON 1.1: a target outside the service's prefix is an unknown
            // operation (smithy awsJson1_1 protocol, "Errors").
            return error("UnknownOperationException", "");
        };
        *self.calls.entry(op.clone()).or_default() += 1;
        if self.denied.contains(&op) {
            // The IAM denial text ECS returns for an unauthorised action
            // (IAM User Guide, "Troubleshoot access denied error messages").
            let resource = body["resourceArn"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{ARN}:service/{CLUSTER}/*"));
            return error(
                "AccessDeniedException",
                &format!(
                    "User: {CALLER} is not authorized to perform: ecs:{op} on resource: \
                     {resource} because no identity-based policy allows the ecs:{op} action"
                ),
            );
        }
        match op.as_str() {
            // API_TagResource: `{resourceArn, tags[{key, value}]}` → `{}`. "If you try
            // to tag a service with a short ARN, you receive an
            // InvalidParameterException error" (`resourceArn`); the message is the
            // one ECS sends (quoted in kayac/ecspresso#297). A resource that does not
            // exist: ResourceNotFoundException (Errors).
            "TagResource" => {
                let arn = body["resourceArn"].as_str().unwrap_or("");
                let Some(s) = self.by_arn(arn) else {
                    return error(
                        "ResourceNotFoundException",
                        "The specified resource wasn't found.",
                    );
                };
                if s.short_arn {
                    return error(
                        "InvalidParameterException",
                        "Long arn format must be used for tagging operations",
                    );
                }
                for t in body["tags"].as_array().cloned().unwrap_or_default() {
                    s.tags.retain(|x| x["key"] != t["key"]);
                    s.tags.push(t);
                }
                (200, json!({}))
            }
            // API_ListTagsForResource: `{resourceArn}` → `{tags[{key, value}]}`; the
            // same short-ARN refusal as TagResource. Its model lists no
            // ResourceNotFoundException, so an unknown ARN is an
            // InvalidParameterException (wording not seen on a real account).
            "ListTagsForResource" => {
                let arn = body["resourceArn"].as_str().unwrap_or("");
                let Some(s) = self.by_arn(arn) else {
                    return error(
                        "InvalidParameterException",
                        "The specified resource is not valid.",
                    );
                };
                if s.short_arn {
                    return error(
                        "InvalidParameterException",
                        "Long arn format must be used for tagging operations",
                    );
                }
                (200, json!({"tags": s.tags}))
            }
            _ if body["cluster"] != CLUSTER => {
                // API_DescribeServices / API_UpdateService, Errors:
                // ClusterNotFoundException "The specified cluster wasn't found".
                error("ClusterNotFoundException", "Cluster not found.")
            }
            // API_DescribeServices: `{cluster, services[], include?["TAGS"]}` →
            // `{services[Service], failures[{arn, reason: "MISSING"}]}`; tags only
            // with `include: ["TAGS"]` ("If this field is omitted, tags aren't
            // included in the response").
            "DescribeServices" => {
                let with_tags = body["include"]
                    .as_array()
                    .is_some_and(|i| i.iter().any(|v| v == "TAGS"));
                let mut services = vec![];
                let mut failures = vec![];
                for name in body["services"].as_array().cloned().unwrap_or_default() {
                    let name = name.as_str().unwrap_or("");
                    let found = self.services.contains_key(name);
                    let key = if found {
                        Some(name.to_owned())
                    } else {
                        self.by_arn(name).map(|s| s.name.clone())
                    };
                    match key.and_then(|k| self.services.get_mut(&k)) {
                        Some(s) => {
                            s.advance();
                            services.push(s.to_json(with_tags));
                        }
                        None => failures.push(
                            json!({"arn": format!("{ARN}:service/{CLUSTER}/{name}"), "reason": "MISSING"}),
                        ),
                    }
                }
                (200, json!({"services": services, "failures": failures}))
            }
            // API_UpdateService: `{cluster, service, forceNewDeployment}` →
            // `{service: Service}` whose PRIMARY deployment is the new one; a
            // missing service: ServiceNotFoundException (Errors). Without
            // `forceNewDeployment` and nothing else changed, no deployment starts.
            "UpdateService" => {
                let Some(s) = self
                    .services
                    .get_mut(body["service"].as_str().unwrap_or(""))
                else {
                    return error("ServiceNotFoundException", "Service not found.");
                };
                if body["forceNewDeployment"] == true {
                    self.next_id += 1;
                    self.forced += 1;
                    let id = format!("ecs-svc/{:04}", self.next_id);
                    for d in &mut s.deployments {
                        d["status"] = json!("ACTIVE");
                    }
                    s.deployments
                        .insert(0, deployment(&id, "PRIMARY", "IN_PROGRESS", 0));
                    s.polls = 0;
                }
                (200, json!({"service": s.to_json(false)}))
            }
            _ => error("UnknownOperationException", ""),
        }
    }
}

impl FakeService {
    pub fn arn(&self) -> String {
        if self.short_arn {
            format!("{ARN}:service/{}", self.name)
        } else {
            format!("{ARN}:service/{CLUSTER}/{}", self.name)
        }
    }

    /// One DescribeServices poll passes.
    fn advance(&mut self) {
        if self.deployments.len() < 2 {
            return; // no rollout of ours in flight
        }
        self.polls += 1;
        match (self.script, self.polls) {
            (Script::Completes, n) if n > 2 => {
                self.deployments.truncate(1);
                let d = &mut self.deployments[0];
                d["rolloutState"] = json!("COMPLETED");
                d["rolloutStateReason"] = json!("ECS deployment completed.");
                d["runningCount"] = json!(2);
                d["pendingCount"] = json!(0);
            }
            (Script::Completes, _) => self.deployments[0]["runningCount"] = json!(1),
            (Script::Fails, n) if n > 1 => {
                let d = &mut self.deployments[0];
                d["rolloutState"] = json!("FAILED");
                d["failedTasks"] = json!(3);
                d["rolloutStateReason"] = json!(
                    "ECS deployment circuit breaker: tasks failed to start. Task failed ELB health checks."
                );
            }
            // API_Deployment `rolloutState`: "If the service fails to reach a steady
            // state and circuit breaker is turned on, the deployment transitions to
            // a FAILED state"; API_DeploymentCircuitBreaker `rollback`: "the service
            // is rolled back to the last deployment that completed successfully" —
            // as a new PRIMARY deployment, the failed one draining as ACTIVE.
            (Script::RollsBack, 2) => {
                let failed = &mut self.deployments[0];
                failed["status"] = json!("ACTIVE");
                failed["rolloutState"] = json!("FAILED");
                failed["failedTasks"] = json!(3);
                failed["rolloutStateReason"] =
                    json!("ECS deployment circuit breaker: tasks failed to start.");
                let back = format!("{}-rollback", failed["id"].as_str().unwrap_or(""));
                for d in self.deployments.iter_mut().skip(1) {
                    d["status"] = json!("ACTIVE");
                }
                let mut rb = deployment(&back, "PRIMARY", "IN_PROGRESS", 2);
                rb["rolloutStateReason"] = json!(format!(
                    "ECS deployment circuit breaker: rolling back to deploymentId {}.",
                    self.deployments[1]["id"].as_str().unwrap_or("")
                ));
                self.deployments.insert(0, rb);
            }
            (Script::RollsBack, n) if n > 3 => {
                self.deployments.truncate(1);
                self.deployments[0]["rolloutState"] = json!("COMPLETED");
            }
            (Script::Vanishes, n) if n > 1 => {
                self.deployments.remove(0);
                self.deployments[0]["status"] = json!("PRIMARY");
            }
            _ => {}
        }
    }

    /// API_Service, the members the restarter and the CLI check read.
    pub fn to_json(&self, with_tags: bool) -> Value {
        let mut v = json!({
            "serviceName": self.name,
            "serviceArn": self.arn(),
            "clusterArn": format!("{ARN}:cluster/{CLUSTER}"),
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "pendingCount": 0,
            "launchType": "FARGATE",
            "deploymentController": {"type": self.controller},
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100
            },
            "currentServiceDeployment": format!("{ARN}:service-deployment/{CLUSTER}/{}/x", self.name),
            "deployments": self.deployments,
        });
        if with_tags {
            v["tags"] = json!(self.tags);
        }
        v
    }
}

/// API_Deployment.
pub fn deployment(id: &str, status: &str, rollout: &str, running: i32) -> Value {
    json!({
        "id": id,
        "status": status,
        "taskDefinition": format!("{ARN}:task-definition/app:7"),
        "desiredCount": 2,
        "pendingCount": 2 - running,
        "runningCount": running,
        "failedTasks": 0,
        "createdAt": 1_764_000_000.5,
        "updatedAt": 1_764_000_000.5,
        "launchType": "FARGATE",
        "rolloutState": rollout,
        "rolloutStateReason": format!("ECS deployment {id} {}.", rollout.to_lowercase()),
    })
}

/// Starts the fake on the testkit's fake HTTP server with `services` in cluster
/// [`CLUSTER`].
pub async fn start(services: &[&str]) -> FakeHttp<FakeState> {
    let mut state = FakeState::default();
    for s in services {
        state.add(s);
    }
    FakeHttp::builder(state)
        .route("POST", "/", |req, st: &mut FakeState| {
            let target = req.header("x-amz-target").unwrap_or_default();
            let body = if req.body.is_empty() {
                json!({})
            } else {
                req.json()
            };
            let (status, reply) = st.handle(target, &body);
            st.next_request += 1;
            let id = format!(
                "8c0a1f4e-2b7d-4e9a-9f00-{:012x}",
                u64::from(st.next_request)
            );
            Response::json(status, &reply)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-RequestId", &id)
        })
        .start()
        .await
}
