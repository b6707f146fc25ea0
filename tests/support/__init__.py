"""What the tests share, importable as `support` (pytest's `pythonpath` puts tests/ on sys.path).

    paths    where the repository's files are: ROOT, EXAMPLES, CAPTURES
    results  what a check's Result says: its top cause, its diagnosis, its failed steps
    handmade networks made by hand with plain ip/nft/sysctl (the `handmade` fixture)
    networks hand-made networks the checks' tests share: a LAN on a bridge, a router, tenants
"""
