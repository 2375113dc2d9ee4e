-- Run once, as a superuser or a role with CREATEROLE, in database `shop`
-- (docs/postgres.md, "Set up once"). Replace the admin password, and put
-- the same value in Secret postgres-hook-admin (10-hook.yaml).

-- The privileges live on the group; both login roles inherit them.
CREATE ROLE app NOLOGIN;
GRANT CONNECT ON DATABASE shop TO app;
GRANT USAGE ON SCHEMA public TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app;

-- The two login roles keyrotor alternates: no login until the hook gives one.
CREATE ROLE app_blue NOLOGIN IN ROLE app;
CREATE ROLE app_green NOLOGIN IN ROLE app;
-- Sessions run as `app`, so objects the app creates belong to the group.
ALTER ROLE app_blue SET role = 'app';
ALTER ROLE app_green SET role = 'app';

-- The hook's role.
CREATE ROLE keyrotor_admin LOGIN CREATEROLE PASSWORD 'change-me';
-- PostgreSQL 16+: CREATEROLE needs ADMIN OPTION on roles it did not create.
GRANT app_blue, app_green TO keyrotor_admin WITH ADMIN OPTION;
-- PostgreSQL 15+: keep the hook's statements (SCRAM verifiers) out of the log.
GRANT SET ON PARAMETER log_statement, log_min_error_statement,
  log_min_duration_statement, log_min_duration_sample TO keyrotor_admin;
