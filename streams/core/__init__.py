"""Pure billing domain code: normalisation, numbering, tariffs, rating, spend and limits.

Nothing in this package may import faust, confluent_kafka, aiokafka, clickhouse_driver or chdb
(tests/unit/test_core_purity.py checks it). Every money path uses integers or Decimal.
"""
