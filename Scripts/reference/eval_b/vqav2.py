def build(*a):
    raise SystemExit('not yet')
