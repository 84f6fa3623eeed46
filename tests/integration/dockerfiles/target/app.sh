cat /app/stage
