# shared.py - code both versions of app.py run: its frames must match across the two
# checkouts although app.py's lines moved.


def build(n):
    return [{"key": i, "value": str(i) * 3} for i in range(n)]
