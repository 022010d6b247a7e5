"""Lead scoring: behavioural, demographic and firmographic rules, incremental, explainable, with decay."""
