"""Analytics: rollups of the event log, KPIs, funnels and their API (issue 15, "The numbers")."""
