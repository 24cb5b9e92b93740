// Vercel's own SDK against the fake (run by ../clients.rs): the calls the `vercel`
// store and restarter make, each answer parsed by `@vercel/sdk`, which validates it
// against the schemas of Vercel's OpenAPI document (a missing required field, a
// wrong type or an unknown enum value throws ResponseValidationError). Prints one
// JSON object of what it saw, for the Rust side to check against the fake's state.
//
// In: VSYNC_TEST_VERCEL_SDK_DIR (where the SDK is installed), VSYNC_FAKE_URL,
// VSYNC_FAKE_TEAM, VSYNC_FAKE_PROJECT, VSYNC_FAKE_TOKEN (a test token, not a
// secret), VSYNC_FAKE_VALUE_FILE (the env value to write, read from a file so it is
// in no argv or environment).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sdkDir = join(process.env.VSYNC_TEST_VERCEL_SDK_DIR, "node_modules/@vercel/sdk/esm");
const { Vercel } = await import(pathToFileURL(join(sdkDir, "index.js")).href);
const { HTTPClient } = await import(pathToFileURL(join(sdkDir, "lib/http.js")).href);

const serverURL = process.env.VSYNC_FAKE_URL;
const teamId = process.env.VSYNC_FAKE_TEAM;
const project = process.env.VSYNC_FAKE_PROJECT;
const token = process.env.VSYNC_FAKE_TOKEN;
const value = readFileSync(process.env.VSYNC_FAKE_VALUE_FILE, "utf8");

const vercel = new Vercel({ bearerToken: token, serverURL });
// The SDK's getProject has no `rollbackInfo`; the CLI asks with it, and so does the
// restarter. The same answer schema, with the rollback fields filled in.
const withRollbackInfo = new HTTPClient();
withRollbackInfo.addHook("beforeRequest", (req) => {
  const url = new URL(req.url);
  url.searchParams.set("rollbackInfo", "true");
  return new Request(url, req);
});
const vercelRb = new Vercel({ bearerToken: token, serverURL, httpClient: withRollbackInfo });

const out = {};
const step = async (name, f) => {
  try {
    return await f();
  } catch (e) {
    console.error(`${name}: ${e?.name}: ${String(e?.message).split("\n")[0]}`);
    // A schema refusal: every field the schemas wanted, union branches flattened.
    const lines = new Set();
    const walk = (issues) => {
      for (const i of issues ?? []) {
        if (i.unionErrors) i.unionErrors.forEach((u) => walk(u.issues));
        else lines.add(`  ${i.path.join(".")}: ${i.message}${i.expected ? ` (want ${i.expected}, got ${i.received})` : ""}`);
      }
    };
    walk(e?.cause?.issues);
    for (const l of lines) console.error(l);
    if (e?.rawValue) console.error(`answer: ${JSON.stringify(e.rawValue).slice(0, 3000)}`);
    process.exit(1);
  }
};
/** A call the fake must refuse: its status and Vercel's error body. */
const refused = async (name, f) => {
  try {
    await f();
  } catch (e) {
    let body = null;
    try {
      body = JSON.parse(e.body);
    } catch {}
    return { status: e.statusCode, code: body?.error?.code ?? null, message: body?.error?.message ?? null,
             requestId: e.rawResponse?.headers?.get("x-vercel-id") ?? null };
  }
  console.error(`${name}: the fake did not refuse`);
  process.exit(1);
};

// The store.
const plain = await step("getProject", () => vercel.projects.getProject({ idOrName: project, teamId }));
out.plainHasRollbackInfo = "lastAliasRequest" in plain || "lastRollbackTarget" in plain;
const envs = await step("filterProjectEnvs", () =>
  vercel.projects.filterProjectEnvs({ idOrName: project, teamId }));
out.envKeys = envs.envs.map((e) => `${e.key}:${e.type}:${[...(e.target ?? [])].join("+")}${e.gitBranch ? "#" + e.gitBranch : ""}`);
const live = envs.envs.find((e) => e.key === "VSYNC_PASSPHRASE" && e.target?.includes("production") && !e.gitBranch);
const one = await step("getProjectEnv", () =>
  vercel.projects.getProjectEnv({ idOrName: project, id: live.id, teamId }));
out.liveRead = { type: one.type, decrypted: one.decrypted ?? null, hasValue: "value" in one && one.value !== undefined };
const created = await step("createProjectEnv", () =>
  vercel.projects.createProjectEnv({
    idOrName: project, teamId, upsert: "true",
    requestBody: { key: "VSYNC_PASSPHRASE_NEXT", value, type: "encrypted", target: ["production"],
                   comment: "vsync-orchestrate run sdk (staged)" },
  }));
const staged = Array.isArray(created.created) ? created.created[0] : created.created;
out.staged = { key: staged.key, type: staged.type };
const stagedRead = await step("getProjectEnv staged", () =>
  vercel.projects.getProjectEnv({ idOrName: project, id: staged.id, teamId }));
out.stagedReadBack = stagedRead.value === value;
const edited = await step("editProjectEnv", () =>
  vercel.projects.editProjectEnv({
    idOrName: project, id: live.id, teamId,
    requestBody: { value, type: live.type, comment: "vsync-orchestrate run sdk" },
  }));
out.edited = { type: edited.type, comment: edited.comment };
out.typeChange = await refused("editProjectEnv type change", () =>
  vercel.projects.editProjectEnv({
    idOrName: project, id: live.id, teamId, requestBody: { value, type: "encrypted" },
  }));
const removed = await step("removeProjectEnv", () =>
  vercel.projects.removeProjectEnv({ idOrName: project, id: staged.id, teamId }));
out.removed = Array.isArray(removed) ? removed.map((e) => e.key) : [removed.key];

// The restarter.
const rb = await step("getProject rollbackInfo", () =>
  vercelRb.projects.getProject({ idOrName: project, teamId }));
out.lastAliasRequest = rb.lastAliasRequest ?? null;
const production = rb.targets?.production?.id;
const list = await step("getDeployments", () =>
  vercel.deployments.getDeployments({ projectId: rb.id, target: "production", limit: 5, teamId }));
out.listed = list.deployments.map((d) => d.uid);
const dep = await step("createDeployment", () =>
  vercel.deployments.createDeployment({
    teamId, forceNew: "1",
    requestBody: { name: rb.name, deploymentId: production, target: "production",
                   meta: { action: "redeploy", vsyncRunId: "sdk-run" } },
  }));
out.created = { id: dep.id, readyState: dep.readyState };
let d;
for (let i = 0; i < 20; i++) {
  d = await step("getDeployment", () => vercel.deployments.getDeployment({ idOrUrl: dep.id, teamId }));
  if (d.readyState === "READY" || d.readyState === "ERROR") break;
}
out.ready = { readyState: d.readyState, aliasAssigned: d.aliasAssigned ?? null };
const byUrl = await step("getDeployment by url", () =>
  vercel.deployments.getDeployment({ idOrUrl: d.url, teamId }));
out.byUrl = byUrl.id;
await step("requestPromote", () =>
  vercel.projects.requestPromote({ projectId: rb.id, deploymentId: dep.id, teamId }));
let job;
for (let i = 0; i < 10; i++) {
  const p = await step("getProject job", () => vercelRb.projects.getProject({ idOrName: project, teamId }));
  job = p.lastAliasRequest;
  if (job && job.jobStatus !== "pending" && job.jobStatus !== "in-progress") {
    out.productionAfter = p.targets?.production?.id ?? null;
    break;
  }
}
out.job = job ? { type: job.type, jobStatus: job.jobStatus, toDeploymentId: job.toDeploymentId } : null;

// Failures, in Vercel's error shape.
out.missingProject = await refused("getProject missing", () =>
  vercel.projects.getProject({ idOrName: "nope", teamId }));
out.badToken = await refused("getProject bad token", () =>
  new Vercel({ bearerToken: "not-the-token", serverURL }).projects.getProject({ idOrName: project, teamId }));
out.missingDeployment = await refused("getDeployment missing", () =>
  vercel.deployments.getDeployment({ idOrUrl: "dpl_nope", teamId }));

console.log(JSON.stringify(out));
