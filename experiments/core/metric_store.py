"""Per-step metrics written in bulk into MLflow's SQL store: what ``log_batch`` does per
row, in one transaction (``experiments.core.tracking.RunLogger`` falls back to ``log_batch``
where this is not possible)."""

from __future__ import annotations

# MLflow's metrics table, in the order the bulk insert gives its values.
_METRIC_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
_SQLITE_INSERT = (f"INSERT INTO metrics ({', '.join(_METRIC_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(_METRIC_COLUMNS))})")


def bulk_store_metrics(client, run_id: str, rows: list[tuple[str, float, int, int]]) -> bool:
    """Store metric rows in a SQL store with one bulk insert and one commit.

    What ``log_batch`` does per row through SQLAlchemy's ORM (about 100 µs of CPU each),
    done in bulk with MLflow's own table model and helpers: each key's newest row is
    validated (``_validate_metric``), NaN and infinities are stored as MLflow stores them
    (``sanitize_metric_value``) and the run's latest metrics are updated by MLflow's
    ``_update_latest_metrics_if_necessary``, all in one transaction. Returns False, having
    stored nothing, where this is not possible: not a SQLAlchemy store, an MLflow without
    these helpers, or a row already stored (the primary key refuses a duplicate, which
    ``log_batch`` skips instead). A locked SQLite database raises, for ``_retrying``.
    """
    if not rows:
        return True
    try:
        import sqlalchemy
        from mlflow.store.tracking.dbmodels.models import SqlMetric
        from mlflow.utils.validation import _validate_metric

        store = client._tracking_client.store
        sessions, sanitize = store.ManagedSessionMaker, store.sanitize_metric_value
        update_latest = store._update_latest_metrics_if_necessary
    except (ImportError, AttributeError):
        return False
    if (SqlMetric.__tablename__ != "metrics"
            or not set(_METRIC_COLUMNS) <= set(SqlMetric.__table__.columns.keys())):
        return False  # an MLflow whose table differs: log_batch knows it
    records, newest = [], {}
    for key, value, ts, step in dict.fromkeys(rows):  # exact repeats once, as log_batch does
        is_nan, value = sanitize(value)
        record = (key, value, ts, step, is_nan, run_id)
        records.append(record)
        old = newest.get(key)  # MLflow's "latest": by step, then timestamp, then value
        if old is None or (step, ts, value) > (old[3], old[2], old[1]):
            newest[key] = record
    for key, value, ts, step, _, _ in newest.values():
        _validate_metric(key, value, ts, step)
    try:
        with sessions(read_only=False) as session:
            connection = session.connection()
            if connection.dialect.name == "sqlite":
                # The driver's own executemany: SQLAlchemy's per-row parameter processing
                # would cost about as much again as SQLite's insert itself.
                connection.exec_driver_sql(_SQLITE_INSERT, records)
            else:
                session.execute(sqlalchemy.insert(SqlMetric.__table__),
                                [dict(zip(_METRIC_COLUMNS, r)) for r in records])
            update_latest([SqlMetric(**dict(zip(_METRIC_COLUMNS, r)))
                           for r in newest.values()], session)
            session.commit()
    except Exception as err:  # MLflow's session wraps the IntegrityError in MlflowException
        if isinstance(err, sqlalchemy.exc.IntegrityError) or isinstance(
                err.__cause__ or err.__context__, sqlalchemy.exc.IntegrityError):
            return False
        raise
    return True
