"""What the tests share, importable as `support` (pytest's `pythonpath` puts tests/ on sys.path).

    paths    where the repository's files are: ROOT, EXAMPLES, CAPTURES
    results  what a check's Result says: its top cause, its diagnosis, its failed steps
    handmade_net  networks made by hand with plain ip/nft/sysctl commands, to be adopted
    ufw      a ruleset as ufw writes it, and the policy it means
"""
