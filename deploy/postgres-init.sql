-- MLflow's tracking store lives beside the service's database, in its own database.
CREATE DATABASE mlflow OWNER leadscore;
