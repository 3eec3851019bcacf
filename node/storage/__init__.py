"""Storage: SQLAlchemy 2 async models, the engine, migrations and one repository per aggregate."""
