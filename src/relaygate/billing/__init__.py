"""Accounts and exact billing: money, prices, token counting, budgets and the
billing stage (docs/billing.md)."""
