import sys


def leave(mode):
    print("leaving with", mode)
    if mode == "int":
        sys.exit(3)
    if mode == "message":
        sys.exit("message: something went wrong")
    if mode == "none":
        sys.exit()
    raise SystemExit(int(mode))


leave(sys.argv[1])
print("not reached")
