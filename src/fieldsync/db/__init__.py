"""The only package that knows SQL: pool, migrations, named queries, constraint translation."""
