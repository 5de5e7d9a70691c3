-- dd0c/alert database and roles. The postgres image runs this once, on an empty data
-- volume; on bare metal run it as a superuser (psql 15+ for \getenv):
--   OWNER_DB_PASSWORD=... APP_DB_PASSWORD=... psql -v ON_ERROR_STOP=1 -f deploy/postgres-init.sql
-- It is safe to run again: it creates what is missing and resets the roles' rights.
--
-- dd0c_owner owns the database and every table; `dd0c-alert migrate` connects as it.
-- dd0c_app is what the services connect as: neither superuser nor BYPASSRLS, and it owns
-- nothing, so row-level security always applies to it. Migrations grant it data rights.

-- An unset variable leaves :'name' in the SQL below, a syntax error that stops the init.
\getenv owner_password OWNER_DB_PASSWORD
\getenv app_password APP_DB_PASSWORD

SELECT 'CREATE ROLE dd0c_owner'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dd0c_owner') \gexec
SELECT 'CREATE ROLE dd0c_app'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dd0c_app') \gexec

ALTER ROLE dd0c_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE dd0c_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    PASSWORD :'app_password';

SELECT 'CREATE DATABASE dd0c OWNER dd0c_owner'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dd0c') \gexec

REVOKE ALL ON DATABASE dd0c FROM PUBLIC;
GRANT CONNECT ON DATABASE dd0c TO dd0c_app;
