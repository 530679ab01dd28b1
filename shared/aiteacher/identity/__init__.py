"""Accounts, logins and profiles."""
