#!/usr/bin/env bash
# Starts N shards of `fleet sim` on ECS Fargate from a deploy/ecs/template.yml stack, waits
# for them to finish, then runs `fleet report merge` on their reports as one more task (its
# summary is in the stack's log group, the merged report on EFS at /reports/merged.json).
#
# CloudFormation has no one-shot task and an ECS service restarts a task that exits, so the
# N tasks are started here: task I gets FLEET_SHARD=I/N and FLEET_REPORT=/reports/shard-I.json
# as container environment overrides of the one task definition.
#
# Usage: deploy/ecs/run-shards.sh STACK N SUBNET[,SUBNET...] [--public-ip]
# Needs: the AWS CLI, with credentials allowed ecs:RunTask, ecs:DescribeTasks,
# iam:PassRole on the stack's two roles, and cloudformation:DescribeStacks.
set -euo pipefail

usage() { echo "usage: $0 STACK N SUBNET[,SUBNET...] [--public-ip]" >&2; exit 2; }
[ $# -ge 3 ] || usage
stack=$1 shards=$2 subnets=$3
public=DISABLED
[ "${4:-}" = --public-ip ] && public=ENABLED
[[ $shards =~ ^[1-9][0-9]*$ ]] || { echo "N must be a whole number of shards, 1 or more: $shards" >&2; exit 2; }

output() { # name
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
cluster=$(output Cluster)
task_definition=$(output TaskDefinition)
security_group=$(output SecurityGroup)
network="awsvpcConfiguration={subnets=[$subnets],securityGroups=[$security_group],assignPublicIp=$public}"

run() { # overrides-json
  aws ecs run-task --cluster "$cluster" --task-definition "$task_definition" \
    --launch-type FARGATE --network-configuration "$network" --overrides "$1" \
    --query 'tasks[0].taskArn' --output text
}

tasks=()
reports=()
for ((i = 0; i < shards; i++)); do
  overrides=$(printf '{"containerOverrides":[{"name":"sim","environment":[{"name":"FLEET_SHARD","value":"%d/%d"},{"name":"FLEET_REPORT","value":"/reports/shard-%d.json"}]}]}' \
    "$i" "$shards" "$i")
  arn=$(run "$overrides")
  [ -n "$arn" ] && [ "$arn" != None ] || { echo "shard $i/$shards did not start" >&2; exit 1; }
  echo "shard $i/$shards: $arn"
  tasks+=("$arn")
  reports+=("\"/reports/shard-$i.json\"")
done

# `aws ecs wait tasks-stopped` takes up to 100 tasks per call.
for ((i = 0; i < ${#tasks[@]}; i += 100)); do
  aws ecs wait tasks-stopped --cluster "$cluster" --tasks "${tasks[@]:i:100}"
done
failed=$(for ((i = 0; i < ${#tasks[@]}; i += 100)); do
  aws ecs describe-tasks --cluster "$cluster" --tasks "${tasks[@]:i:100}" \
    --query 'tasks[?containers[0].exitCode!=`0`].taskArn' --output text
done)
if [ -n "${failed//[[:space:]]/}" ]; then
  echo "some shards failed (see the log group): $failed" >&2
  exit 1
fi

# Every report path must be given: the image has no shell to expand a glob.
merge=$(IFS=,; printf '{"containerOverrides":[{"name":"sim","command":["report","merge",%s,"--out","/reports/merged.json"]}]}' "${reports[*]}")
arn=$(run "$merge")
aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$arn"
code=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$arn" \
  --query 'tasks[0].containers[0].exitCode' --output text)
[ "$code" = 0 ] || { echo "the merge failed (exit $code; see the log group)" >&2; exit 1; }
echo "merged: /reports/merged.json on the stack's file system; summary in log group $(output LogGroup)"
