from model_monitoring.cli import main

main()
