-- Shared daily salts, sealed (serve --shared-salts; internal/identity,
-- SaltKey). A row per UTC day and candidate: the earliest row of a day
-- that opens under the collectors' salt key is that day's salt for every
-- instance. `sealed` is AES-256-GCM ciphertext under a key only the
-- collectors hold, with the day as associated data, and reaches the
-- server in an INSERT block, never in the text of a query. `created` is
-- the server's clock, so every instance orders candidates alike. Rows
-- are deleted 48 hours after their day began (a mutation run by the
-- collectors).
--
-- The salts table of 0006 held salts in clear; it is dropped with its
-- rows. Its INSERTs carried the salt in their text: a server that logged
-- queries keeps those salts in system.query_log until the log is
-- truncated (see the README).
{{dropDistributed "salts"}}
DROP TABLE IF EXISTS {{table "salts"}}{{onCluster}};

CREATE TABLE IF NOT EXISTS {{table "sealed_salts"}}{{onCluster}} (
    day     Date,
    sealed  String,
    created DateTime DEFAULT now()
) ENGINE = {{engine "MergeTree" "sealed_salts"}}
PARTITION BY toYYYYMM(day)
ORDER BY (day, created){{ttl "day + INTERVAL 2 DAY"}};

{{distributed "sealed_salts" "rand()"}}
