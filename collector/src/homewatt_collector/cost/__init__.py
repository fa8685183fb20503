"""Cost: energy per tariff period and its price, from the counters InfluxDB holds.

One concern per module: `tariff` (the site's tariff file), `config` (the site's cost config:
where InfluxDB is, which devices make the bill), `bill` (pure: counters -> energy and cost per
local day, period, device and channel), `v1api` (InfluxDB's v1 /query and /write), `read`
(InfluxQL for the counters), `write` (measurement energy_cost), `report` (the command's work:
the table, the coverage notes), `cli` (`homewatt-collector cost`: its options only).
"""
