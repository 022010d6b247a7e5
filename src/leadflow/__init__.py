"""leadflow: self-hosted marketing automation and CRM integration engine."""

__version__ = "0.1.0"
