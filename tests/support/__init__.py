"""What the tests share, importable as `support` (pytest's `pythonpath` puts tests/ on sys.path).

    paths       where the repository's files are: ROOT, EXAMPLES, CAPTURES
    results     what a check's Result says: its top cause, its diagnosis, its failed steps
    handmade    networks made by hand with plain ip/nft/sysctl (the `handmade` fixture)
    networks    hand-made networks the checks' tests share: a LAN on a bridge, a router, tenants
    handmade_net  hand-made networks for the NAT, filter, exposure, Docker and OVS checks
    handmade_discover  hand-made namespaces for discovery, and snapshots of their state
    site        a five-namespace site (client, two routers, a bridge, a server) for `probe`
    dockerhost  a Docker-like host: containers as processes on two bridges, dockerd's rules
    frontends   rulesets real ufw and firewalld wrote (captures/firewalls/), and their policies
"""
