from iceaudit.cli import main

main()
