"""cdrflow: Kafka streaming mediation, rating and bill-shock control for telecom CDRs."""
__version__ = "0.1.0"
