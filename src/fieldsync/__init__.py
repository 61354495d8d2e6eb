"""fieldsync: offline-first field reporting for emergency-management inspectors."""

__version__ = "0.1.0"
