"""The repository's one InfluxDB 2 stand-in. It is NOT InfluxDB.

InfluxDB 2 cannot run on the development and CI machines (no package in a reachable registry,
no Docker Hub). The stand-in answers InfluxDB 2.7.12's HTTP API for what homewatt uses, with
the status codes, headers and bytes the real server sends, each behaviour reconstructed from
public sources (below) and none of it recorded from a real server. Tests that use it say in
their names that they do not run against a real InfluxDB 2 (`not_run_against_a_real_influxdb2`,
`..._not_the_real_influxdb`, or the module docstring for a whole module of stand-in tests).

Three ways to run it (stdlib only, Python 3.11):
- in-process: `InfluxDB2StandIn(data_dir).start()`, `.url`, `.setup(org=, bucket=, token=)`
  (POST /api/v2/setup), `.stop()`; `.requests` records what clients sent, `.overrides[(method,
  path)]` replaces an answer and `.answer(request)` gives the stand-in's own one (faults),
  `.query_fault = (table, message)` ends the next Flux answers in an error table, `now_ns=`
  injects the clock (retention);
- as a process: `python -m tests.support.influxdb2 [run|standin-init|version]` (__main__.py);
- as the image `homewatt-test/influxdb-standin:<hash>` (image.py: `build_image(rig.daemon,
  rig.image("bookworm"))`, `save_image` for a role's image archive), FROM the rig's bookworm
  image, laid out like influxdb:2.7: uid/gid 1000 `influxdb`, /var/lib/influxdb2 and
  /etc/influxdb2, /entrypoint.sh, CMD influxd, port 8086, DOCKER_INFLUXDB_INIT_* setup on the
  first start, INFLUXD_* settings checked the way influxd parses them, the CLI config in
  INFLUX_CONFIGS_PATH (0600). Health check for both images: `curl -fsS
  http://127.0.0.1:8086/health` (image.HEALTHCHECK). There is no `influx` CLI in the
  stand-in: a role must create tokens, buckets, DBRPs and tasks through the HTTP API.

Endpoints, each with its source (influxdata/influxdb at tag v2.7.12 unless said otherwise):
- GET /health, /ready: the exact /health bytes (version v2.7.12, commit ec9dcde5d6).
  http/health.go, http/ready.go.
- GET, HEAD /ping: 204; X-Influxdb-Build and X-Influxdb-Version on every answer.
  http/legacy/ping_handler.go, http/handler.go.
- GET, POST /api/v2/setup: once only, then 422 conflict "onboarding has already been
  completed"; creates user, org (with system buckets _tasks, _monitoring), bucket and operator
  token. tenant/http_server_onboarding.go, tenant/service_onboarding.go, tenant/service_org.go.
- /api/v2/orgs, /api/v2/users, /api/v2/me: list (only what the token may read), get; create
  an org. tenant/http_server_org.go, tenant/http_server_user.go.
- /api/v2/buckets[/{id}]: list, get, create, patch, delete; retention rules, shard-group
  durations, name rules, 422 duplicates, 500 for a retention under 1h.
  tenant/http_server_bucket.go, tenant/service_bucket.go, storage/bucket_service.go,
  v1/services/meta.
- /api/v2/authorizations[/{id}]: create (never more than the creator holds: 403), list, get,
  patch status and description, delete. authorization/http_server.go,
  authorization/middleware_auth.go.
- /api/v2/dbrps[/{id}]: real and *virtual* mappings (one per bucket), defaults, 422
  duplicates. dbrp/http_server_dbrp.go, dbrp/service.go, dbrp/middleware_auth.go.
- /api/v2/tasks[/{id}]: create from `option task = {...}`, list, get, patch, delete; stored,
  never run. http/task_service.go, kv/task.go, task/options.
- POST /api/v2/write: line protocol (gzip, precision); 400 naming every bad line, 403 without
  write permission, 404, 422 partial writes (retention, field type conflicts).
  http/write_handler.go, http/points, models/points.go, v1/coordinator/points_writer.go,
  tsdb/shard.go, tsdb/field_validator.go.
- POST /api/v2/query: a Flux subset (flux.py) as annotated CSV with CRLF line ends, chunked,
  gzip from 1400 bytes, error tables after data. http/query.go, http/query_handler.go;
  influxdata/flux v0.196.1 csv/result.go, csv/dialect.go, result.go.
- GET, POST /query and POST /write (v1): through DBRP mappings; an InfluxQL subset
  (influxql.py). http/legacy/*, influxql/query/*, v1/coordinator/statement_executor.go.
- GET /api/v2/backup/metadata, /kv, /shards/{id}: operator token only (an all-access token
  gets 401); multipart kv, sql, buckets. http/backup_service.go, authorizer/backup.go,
  backup/backup.go, tsdb/store.go.
- POST /api/v2/restore/bucketMetadata, /shards/{id}, /kv, /sql: a bucket from a manifest with
  shard mappings, shard data, a full KV restore. http/restore_service.go, authorizer/restore.go.
Errors are `{"code", "message"}` with X-Platform-Error-Code (kit/transport/http
error_handler.go), tab-indented where the real handler uses kithttp.API. Tokens and
permissions follow authz.go and authorizer/*.go (auth.py). The image follows
influxdata-docker influxdb/2.7/Dockerfile and entrypoint.sh; the CLI config follows
influx-cli v2.7.5 config/local.go. Shapes were checked with influxdb-client's generated
`domain` models (the OpenAPI contract in code) in tests/influxdb2.

What it does not do (each answers a 400 or a start error naming the stand-in, never a
pretend): Flux beyond from/range/filter/limit/first/last/count/to/yield (no aggregateWindow, no
group, no imports); InfluxQL beyond raw SELECTs and SHOW DATABASES/MEASUREMENTS/FIELD KEYS/TAG
KEYS; running tasks; compiling a task's Flux (a script that does not parse is stored);
v1 usernames and passwords; sessions and signin; the UI; TLS; `influxd upgrade` and
/docker-entrypoint-initdb.d scripts; restoring real TSM shards or a real BoltDB. Its storage
and backup parts are its own formats (store.py, handlers_backup.py), not BoltDB or TSM.
"""

from .server import COMMIT, VERSION, InfluxDB2StandIn, Recorded, Reply

__all__ = ["COMMIT", "VERSION", "InfluxDB2StandIn", "Recorded", "Reply"]
