-- Rows of the committed v1 fixture history_v1.sqlite. Regenerate (only if the fixture is lost; v1 is frozen):
--   rm -f history_v1.sqlite
--   sqlite3 history_v1.sqlite < ../../src/store/migrations/0001_core.sql
--   sqlite3 history_v1.sqlite < history_v1.sql
-- It mirrors a slipd at schema v1: web has two completed releases, a failed deploy and a queued one
-- (which must survive the upgrade), plus a completed preview deploy.
BEGIN;
INSERT INTO meta (key, value) VALUES ('instance_id', '5a1bd00d5a1bd00d'), ('created_version', '0.1.0');

INSERT INTO deploys (id, app, preview_id, "trigger", tag, images, digests, kind, strategy, status, error, error_code,
                     attempt, actor, source_ip, meta, plan, rollback_of, superseded_by, created_at, started_at,
                     finished_at)
VALUES
 ('dep_01hf7yat0028t5cy4gnf6yy4hm', 'web', NULL, 'webhook', 'v1', '{"web":"127.0.0.1:5000/acme/web:v1"}',
  '{"web":"127.0.0.1:5000/acme/web@sha256:1111111111111111111111111111111111111111111111111111111111111111"}',
  'web', 'blue-green', 'completed', NULL, NULL, 1, 'app:web', '10.0.0.5', '{"ref":"refs/heads/main"}', '{}', NULL,
  NULL, 1700000000000, 1700000000000, 1700000030000),
 ('dep_01hf7yx3y028t5cy4gnf6yy4hn', 'web', NULL, 'cli', 'v2', '{"web":"127.0.0.1:5000/acme/web:v2"}',
  '{"web":"127.0.0.1:5000/acme/web@sha256:2222222222222222222222222222222222222222222222222222222222222222"}',
  'web', 'blue-green', 'completed', NULL, NULL, 1, 'admin', '127.0.0.1', NULL, '{}', NULL, NULL,
  1700000600000, 1700000600000, 1700000640000),
 ('dep_01hf7zfdw028t5cy4gnf6yy4hp', 'web', NULL, 'webhook', 'v3', '{"web":"127.0.0.1:5000/acme/web:v3"}', NULL,
  'web', 'blue-green', 'failed', 'web-3 not healthy after 30s (last probe: HTTP 503 on /up)', 'unhealthy', 1,
  'app:web', '10.0.0.5', NULL, NULL, NULL, NULL, 1700001200000, 1700001200000, 1700001245000),
 ('dep_01hf801qt028t5cy4gnf6yy4hq', 'web', NULL, 'webhook', 'v4', '{"web":"127.0.0.1:5000/acme/web:v4"}', NULL,
  'web', 'blue-green', 'queued', NULL, NULL, 1, 'app:web', '10.0.0.5', NULL, NULL, NULL, NULL, 1700001800000, NULL,
  NULL),
 ('dep_01hf80m1r028t5cy4gnf6yy4hr', 'web', 'pr-7', 'webhook', 'pr-7-abc', '{"web":"127.0.0.1:5000/acme/web:pr-7-abc"}',
  NULL, 'web', 'blue-green', 'completed', NULL, NULL, 1, 'app:web', '10.0.0.5', NULL, NULL, NULL, NULL,
  1700002400000, 1700002400000, 1700002420000);

INSERT INTO deploy_events (deploy_id, seq, at, kind, status, message, data) VALUES
 ('dep_01hf7yat0028t5cy4gnf6yy4hm', 1, 1700000000000, 'status', 'accepted', 'accepted', NULL),
 ('dep_01hf7yat0028t5cy4gnf6yy4hm', 2, 1700000001000, 'status', 'pulling', 'pulling', NULL),
 ('dep_01hf7yat0028t5cy4gnf6yy4hm', 3, 1700000002000, 'log', 'pulling', 'pulled 3 layers', '{"layers":3}'),
 ('dep_01hf7yat0028t5cy4gnf6yy4hm', 4, 1700000030000, 'status', 'completed', 'completed', NULL),
 ('dep_01hf7yx3y028t5cy4gnf6yy4hn', 1, 1700000600000, 'status', 'accepted', 'accepted', NULL),
 ('dep_01hf7yx3y028t5cy4gnf6yy4hn', 2, 1700000640000, 'status', 'completed', 'completed', NULL),
 ('dep_01hf7zfdw028t5cy4gnf6yy4hp', 1, 1700001200000, 'status', 'accepted', 'accepted', NULL),
 ('dep_01hf7zfdw028t5cy4gnf6yy4hp', 2, 1700001245000, 'status', 'failed',
  'web-3 not healthy after 30s (last probe: HTTP 503 on /up)', '{"error_code":"unhealthy"}'),
 ('dep_01hf801qt028t5cy4gnf6yy4hq', 1, 1700001800000, 'status', 'queued', 'queued behind dep_01hf7zfdw028t5cy4gnf6yy4hp',
  '{"behind":"dep_01hf7zfdw028t5cy4gnf6yy4hp"}'),
 ('dep_01hf80m1r028t5cy4gnf6yy4hr', 1, 1700002400000, 'status', 'accepted', 'accepted', NULL),
 ('dep_01hf80m1r028t5cy4gnf6yy4hr', 2, 1700002420000, 'status', 'completed', 'completed', NULL);

INSERT INTO apps (name, kind, status, current_deploy_id, previous_deploy_id, config_hash, updated_at) VALUES
 ('web', 'web', 'running', 'dep_01hf7yx3y028t5cy4gnf6yy4hn', 'dep_01hf7yat0028t5cy4gnf6yy4hm', 'cfg-2', 1700000640000);

INSERT INTO instances (id, app, preview_id, deploy_id, runtime_kind, runtime_id, name, role, ports, created_at,
                       retired_at) VALUES
 ('in-web-1', 'web', NULL, 'dep_01hf7yat0028t5cy4gnf6yy4hm', 'container', 'c0ffee01', 'slip-web-0a1b2c3d', 'retired',
  '[{"host":20001,"container":8080}]', 1700000005000, 1700000660000),
 ('in-web-2', 'web', NULL, 'dep_01hf7yx3y028t5cy4gnf6yy4hn', 'container', 'c0ffee02', 'slip-web-4e5f6a7b', 'current',
  '[{"host":20002,"container":8080}]', 1700000605000, NULL),
 ('in-pr7-1', 'web', 'pr-7', 'dep_01hf80m1r028t5cy4gnf6yy4hr', 'container', 'c0ffee03', 'slip-web-8c9d0e1f',
  'current', '[{"host":20003,"container":8080}]', 1700002405000, NULL);

INSERT INTO port_leases (port, instance_id) VALUES (20002, 'in-web-2'), (20003, 'in-pr7-1');

INSERT INTO deliveries (sig_hash, app, deploy_id, received_at, expires_at) VALUES
 (x'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'web', 'dep_01hf801qt028t5cy4gnf6yy4hq',
  1700001800000, 1700002400000);

PRAGMA user_version = 1;
COMMIT;
