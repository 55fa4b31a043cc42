"""Corporate self-care web portal (seed 004): see streams/portal/app.py."""
